/**
 * A process that embeds the runtime exits once it closed the runtime, even
 * with a session detached just before (its resume window's eviction timer
 * once held such a process open for the whole window, 10 minutes by
 * default).
 *
 * @module
 */
import { deepEqual } from "assert";

const FIXTURE = new URL("../fixtures/embedding/close_and_exit.ts", import.meta.url);

Deno.test("a process embedding the runtime exits after close, a detached session's window pending", async () => {
  // Far beyond the ~1 s the fixture takes, far below the 10-minute window it once waited out.
  const signal = AbortSignal.timeout(120_000);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--unstable-worker-options",
      "--no-prompt",
      "-A",
      FIXTURE.pathname,
    ],
    stdout: "piped",
    stderr: "piped",
    signal,
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr);
  deepEqual(
    { code: out.code, stdout },
    { code: 0, stdout: "closed" },
    `the process did not exit on its own after closing the runtime${
      signal.aborted ? " (killed after 120 s)" : ""
    }: ${stderr.slice(-2000)}`,
  );
});
