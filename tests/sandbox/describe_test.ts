/**
 * Agent modules are described in short-lived processes (issue 9, class 7):
 * a module that hangs, throws or exhausts its heap at import is skipped
 * with a warning naming the file and why, the runtime serves the good
 * agents, and nothing of the bad modules keeps running in or under the
 * runtime's process afterwards.
 */
import { deepEqual, equal, match, ok } from "assert";
import { ROOT, startServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";
import type { Logger } from "../../src/logger.ts";
import process from "node:process";

const AGENTS = `${ROOT}/tests/fixtures/describe_agents`;

/** CPU time this process has used (s): user plus system, every thread. */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** The command lines of this process's children. */
async function children(): Promise<string[]> {
  const out = await new Deno.Command("ps", {
    args: ["-o", "args=", "--ppid", String(Deno.pid)],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean);
}

Deno.test("modules that hang, throw or hog memory at import are skipped", async () => {
  const warnings: Array<{ path: string; reason: string }> = [];
  const logger: Logger = {
    info: () => {},
    error: () => {},
    warn: (_msg, fields) => void warnings.push(fields as { path: string; reason: string }),
  };
  await using server = await startServer({
    agentsDir: AGENTS,
    logger,
    describe: { timeoutMs: 3000, heapMb: 64 },
  });
  deepEqual(server.runtime.inventory().map((a) => a.name), ["good"]);
  const reason = (file: string) => warnings.find((w) => w.path.endsWith(`/${file}`))?.reason ?? "";
  match(reason("hang.ts"), /did not describe itself within 3 s; killed/);
  match(reason("throws.ts"), /boom at import/);
  match(reason("hog.ts"), /exhausted the 64 MiB describe heap/);

  // Healthy afterwards: no describer left behind, no thread of a bad module spinning here.
  deepEqual((await children()).filter((c) => c.includes("data:application/typescript")), []);
  const health = await fetch(`${server.http}/healthz`);
  equal(health.status, 200);
  await health.body?.cancel();
  const before = cpuSeconds();
  const wall = performance.now();
  await new Promise((r) => setTimeout(r, 1000));
  const used = cpuSeconds() - before;
  const elapsed = (performance.now() - wall) / 1000;
  ok(used < elapsed / 2, `runtime used ${used} s of CPU in ${elapsed} s while idle`);

  const alice = await connect(server.url, "alice-token");
  try {
    const acc = await alice.submit({ agent: "good", input: { x: 1 } });
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    const end = (await alice.untilTerminal(acc.job_id!, 30_000)).at(-1)!;
    deepEqual(end.payload.result, { echoed: { x: 1 } });
  } finally {
    await alice.close();
  }
});
