/**
 * Spare workers: after a burst of one key's fresh jobs, idle sandbox
 * processes ready fresh workers ahead for the key's next burst. Each still
 * serves exactly one job, and the check that nothing of a job outlives its
 * worker still holds in a process that holds spares.
 *
 * @module
 */
import { equal, ok } from "assert";
import { ROOT, startServer, type TestServer } from "../../testing/server.ts";
import { connect, type WsClient } from "../../testing/ws_client.ts";
import { sample, scrapeUntil } from "../operations/_observe.ts";
import { processGone } from "./_process.ts";

const FIXTURES = `${ROOT}/tests/fixtures/spares`;

/**
 * Jobs per burst. Spares are sized by how many jobs of a key ran at once
 * over the processes that served them: the burst must outnumber those
 * processes. Short jobs, many of them, do on any host: the first processes
 * serve again long before as many new ones have started (a burst of 6
 * jobs as long as a process start sometimes got a process each, and no
 * spare).
 */
const BURST = 12;

/** Runs `n` jobs of `isolate-id` at once and returns their results. */
async function burst(
  c: WsClient,
  n: number,
  input: Record<string, unknown>,
): Promise<Array<{ id: string; pid: number }>> {
  const accepted = await Promise.all(
    Array.from({ length: n }, () => c.submit({ agent: "isolate-id", input })),
  );
  const results = [];
  for (const acc of accepted) {
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    const terminal = (await c.untilTerminal(acc.job_id!, 30_000)).at(-1)!;
    equal(terminal.type, "job.result", JSON.stringify(terminal.payload));
    results.push(terminal.payload.result as { id: string; pid: number });
  }
  return results;
}

/** Waits until idle processes hold at least one spare worker. */
async function sparesReady(server: TestServer): Promise<void> {
  await scrapeUntil(
    server.http,
    (t) => (sample(t, "arcp_sandbox_spare_workers") ?? 0) >= 1,
    "spare workers after a burst",
  );
}

Deno.test("jobs given spare workers each run in a worker no other job ran in", async () => {
  await using server = await startServer({ agentsDir: FIXTURES });
  await using c = await connect(server.url);
  const first = await burst(c, BURST, { ms: 50 });
  await sparesReady(server);
  const second = await burst(c, BURST, { ms: 50 });
  await sparesReady(server);
  const one = await burst(c, 1, {});
  const ids = [...first, ...second, ...one].map((r) => r.id);
  equal(new Set(ids).size, ids.length, `a worker served two jobs: ${ids.join(" ")}`);
});

Deno.test("a job that leaves a thread behind ends its process even when it holds spares", async () => {
  await using server = await startServer({ agentsDir: FIXTURES });
  await using c = await connect(server.url);
  await burst(c, BURST, { ms: 50 });
  await sparesReady(server);
  const [spun] = await burst(c, 1, { spin: true });
  ok(Number.isInteger(spun.pid) && spun.pid !== Deno.pid);
  ok(await processGone(spun.pid, 10_000), `sandbox process ${spun.pid} still runs`);
  // Its key's jobs go on, in other workers.
  const after = await burst(c, 3, {});
  ok(after.every((r) => r.id !== spun.id && r.pid !== spun.pid));
});
