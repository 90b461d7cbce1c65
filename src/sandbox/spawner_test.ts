import { deepEqual, equal, ok } from "assert";
import { getPriority } from "os";
import type { OutputSink } from "./output_drain.ts";
import { Spawner } from "./spawner.ts";

/** A sink that keeps what it hears. */
function collect(): OutputSink & { lines: string[]; floods: number; flooded: Promise<void> } {
  const lines: string[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  return {
    lines,
    floods: 0,
    flooded: promise,
    line: (text) => void lines.push(text),
    dropped: () => {},
    flood() {
      this.floods++;
      resolve();
    },
  };
}

function sh(spawner: Spawner, script: string, env: Record<string, string> = {}, stdinLine = "") {
  const stdout = collect();
  const stderr = collect();
  const proc = spawner.spawn({
    command: "/bin/sh",
    args: ["-c", script],
    env,
    stdinLine,
    niceOffset: 5,
    stdout,
    stderr,
  });
  return { proc, stdout, stderr };
}

Deno.test("spawner: processes start off the main thread and behave as spawned here", async (t) => {
  const spawner = new Spawner();
  try {
    await t.step(
      "stdin gets the line, output and exit come back, the env is only what was given",
      async () => {
        const { proc, stdout, stderr } = sh(
          spawner,
          'read -r line; echo "got $line"; echo "FOO=$FOO HOME=${HOME:-unset}"; echo last words >&2; exit 3',
          { FOO: "bar" },
          "the intro\n",
        );
        const exit = await proc.status;
        equal(exit.code, 3);
        equal(exit.error, undefined);
        deepEqual(stdout.lines, ["got the intro", "FOO=bar HOME=unset"]);
        deepEqual(stderr.lines, ["last words"]);
        ok(exit.tail.includes("last words"), "the end of stderr explains an exit");
        ok(Number.isInteger(proc.pid) && proc.pid !== Deno.pid, "its pid is known once started");
      },
    );

    await t.step("its priority is lowered below the runtime's", async () => {
      // The intro is written once the priority is set: read it first.
      const { proc, stdout } = sh(spawner, "read -r line; cut -d' ' -f19 /proc/$$/stat", {}, "x\n");
      await proc.status;
      equal(Number(stdout.lines[0]), Math.min(19, getPriority() + 5));
    });

    await t.step("kill ends it with SIGKILL", async () => {
      const { proc } = sh(spawner, "echo up; exec sleep 60");
      proc.kill();
      const exit = await proc.status;
      equal(exit.signal, "SIGKILL");
    });

    await t.step("a command that cannot start ends with the reason", async () => {
      const { proc } = sh(spawner, "");
      const missing = spawner.spawn({
        command: "/nonexistent/deno",
        args: [],
        env: {},
        stdinLine: "",
        niceOffset: 5,
        stdout: collect(),
        stderr: collect(),
      });
      const exit = await missing.status;
      equal(exit.code, -1);
      ok(exit.error && exit.error.length > 0, "it says why");
      equal(missing.pid, undefined);
      equal((await proc.status).code, 0, "the spawner goes on");
    });

    await t.step("output over the budget is reported once as a flood", async () => {
      const { proc, stdout } = sh(
        spawner,
        "exec yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
      );
      await stdout.flooded;
      equal(stdout.floods, 1);
      proc.kill();
      equal((await proc.status).signal, "SIGKILL");
    });
  } finally {
    await spawner.close();
  }
});

Deno.test("spawner: close kills what still runs, and nothing starts after", async () => {
  const spawner = new Spawner();
  const { proc } = sh(spawner, "exec sleep 60");
  await spawner.close();
  equal((await proc.status).signal, "SIGKILL");
  const late = sh(spawner, "exit 0").proc;
  ok((await late.status).error, "a closed spawner starts nothing");
});
