/**
 * deno.json cannot import `src/cli/flags.ts`, so its tasks are checked
 * against it here: every task that runs runtime code grants exactly
 * `RUN_FLAGS`, and type checking enables exactly the unstable APIs.
 */
import { deepEqual, ok } from "assert";
import { RUN_FLAGS, UNSTABLE_FLAGS } from "../../src/cli/flags.ts";
import config from "../../deno.json" with { type: "json" };

/** Flags that change how code is checked, not what it may do. */
const CHECKING = new Set(["--no-check"]);

interface DenoCommand {
  task: string;
  subcommand: string;
  flags: string[];
  target: string;
}

function denoCommands(): DenoCommand[] {
  const commands: DenoCommand[] = [];
  for (const [task, line] of Object.entries(config.tasks as Record<string, string>)) {
    for (const part of line.split("&&")) {
      const [program, subcommand, ...rest] = part.trim().split(/\s+/);
      if (program !== "deno") continue;
      const first = rest.findIndex((t) => !t.startsWith("-"));
      commands.push({
        task,
        subcommand,
        flags: first < 0 ? rest : rest.slice(0, first),
        target: first < 0 ? "" : rest[first],
      });
    }
  }
  return commands;
}

Deno.test("deno.json tasks that run the runtime grant exactly RUN_FLAGS", () => {
  const running = denoCommands().filter((c) =>
    ["run", "test", "bench"].includes(c.subcommand) && c.target !== "scripts/compile.ts"
  );
  // serve, arcp, test, bench (twice) and bench:figures.
  ok(running.length >= 6, `found only ${running.map((c) => c.task).join(", ")}`);
  for (const c of running) {
    deepEqual(
      c.flags.filter((f) => !CHECKING.has(f)).sort(),
      [...RUN_FLAGS].sort(),
      `task ${c.task}`,
    );
  }
});

Deno.test("deno.json's check task enables exactly the unstable APIs the runtime uses", () => {
  const checks = denoCommands().filter((c) => c.subcommand === "check");
  deepEqual(checks.map((c) => c.task), ["check"]);
  deepEqual(checks[0].flags, [...UNSTABLE_FLAGS]);
});

Deno.test("deno.json's unstable list names the same APIs as UNSTABLE_FLAGS", () => {
  deepEqual(
    [...config.unstable].map((u) => `--unstable-${u}`).sort(),
    [...UNSTABLE_FLAGS].sort(),
  );
});
