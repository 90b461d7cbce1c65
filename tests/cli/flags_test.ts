/**
 * deno.json cannot import `src/cli/flags.ts`, so its tasks are checked
 * against it here: every task that runs runtime code grants exactly
 * `RUN_FLAGS`, the tasks that start it as a process of its own set
 * `RUN_ENV`, and type checking enables exactly the unstable APIs.
 */
import { deepEqual, ok } from "assert";
import { RUN_ENV, RUN_FLAGS, UNSTABLE_FLAGS } from "../../src/cli/flags.ts";
import config from "../../deno.json" with { type: "json" };

/** Flags that change how code is checked, not what it may do. */
const CHECKING = new Set(["--no-check"]);

interface DenoCommand {
  task: string;
  /** `NAME=value` assignments before `deno`. */
  env: Record<string, string>;
  subcommand: string;
  flags: string[];
  target: string;
}

function denoCommands(): DenoCommand[] {
  const commands: DenoCommand[] = [];
  for (const [task, line] of Object.entries(config.tasks as Record<string, string>)) {
    for (const part of line.split("&&")) {
      const words = part.trim().split(/\s+/);
      const env: Record<string, string> = {};
      while (/^[A-Z_]+=/.test(words[0] ?? "")) {
        const [name, value] = words.shift()!.split("=");
        env[name] = value;
      }
      const [program, subcommand, ...rest] = words;
      if (program !== "deno") continue;
      const first = rest.findIndex((t) => !t.startsWith("-"));
      commands.push({
        task,
        env,
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

Deno.test("deno.json tasks that start the runtime as its own process set exactly RUN_ENV", () => {
  const runtimes = denoCommands().filter((c) => c.target === "src/cli/main.ts");
  deepEqual(runtimes.map((c) => c.task).sort(), ["arcp", "serve"]);
  for (const c of runtimes) deepEqual(c.env, RUN_ENV, `task ${c.task}`);
  // A bench or test process drives load beside the runtime on the same cores:
  // polling its own sockets more often made it take CPU from the runtime.
  for (const c of denoCommands().filter((c) => c.target !== "src/cli/main.ts")) {
    deepEqual(c.env, {}, `task ${c.task}`);
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
