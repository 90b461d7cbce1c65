/**
 * The warm pool while fresh jobs are in flight: a refill waits for their
 * outcomes, but not for a job that runs on. After a burst, the pool holds
 * what the burst asked for (within `warmMax`) for the next one, and gives
 * it back once the demand has gone.
 *
 * @module
 */
import { equal, ok } from "assert";
import { ROOT, startServer } from "../../testing/server.ts";
import { connect, type WsClient } from "../../testing/ws_client.ts";
import { sample, scrape, scrapeUntil } from "../operations/_observe.ts";

Deno.test("the warm pool refills for a key while a fresh job of that key is still in flight", async () => {
  // One job per process: the sleeper's process never comes back, so its key's warm
  // worker must be started while the sleeper runs, by a refill the job in flight deferred.
  await using server = await startServer({ warmPool: 1, jobsPerProcess: 1 });
  await using c = await connect(server.url);
  const sleeper = await c.submit({ agent: "sleeper", input: { ms: 60_000 } });
  equal(sleeper.type, "job.accepted", JSON.stringify(sleeper.payload));
  await c.next((e) => e.job_id === sleeper.job_id && e.payload?.body?.phase === "sleeping");

  const during = await scrapeUntil(
    server.http,
    (t) => (sample(t, "arcp_sandbox_pool_processes", { pool: "warm" }) ?? 0) >= 1,
    "a warm process for the sleeper's key",
  );
  // Still in flight: the refill did not wait for its outcome.
  equal(sample(during, "arcp_jobs_live"), 1);

  c.send("job.cancel", {}, { job_id: sleeper.job_id });
  equal((await c.untilTerminal(sleeper.job_id!)).at(-1)!.payload.code, "CANCELLED");
});

/** Scrapes until `ready` holds, for up to a minute: the pool shrinks ~20 – 25 s after a burst. */
async function scrapeLong(
  http: string,
  ready: (text: string) => boolean,
  what: string,
): Promise<string> {
  const deadline = Date.now() + 60_000;
  while (true) {
    const text = await scrape(http);
    if (ready(text)) return text;
    if (Date.now() > deadline) throw new Error(`never: ${what}:\n${text}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** What the `warmed` fixture reports of the worker that ran its job. */
interface Warmed {
  loadedAt: number;
  runs: number;
}

/** One `warmed` job per client, all submitted at once; each one's report. */
async function burst(clients: WsClient[]): Promise<Warmed[]> {
  return await Promise.all(clients.map(async (c) => {
    const accepted = await c.submit({ agent: "warmed", input: {} });
    equal(accepted.type, "job.accepted", JSON.stringify(accepted.payload));
    const end = (await c.untilTerminal(accepted.job_id!, 30_000)).at(-1)!;
    equal(end.type, "job.result", JSON.stringify(end.payload));
    return end.payload.result as Warmed;
  }));
}

Deno.test("after a burst of fresh jobs the pool readies a worker each for the next, within warmMax, and gives them back once demand stops", async () => {
  // One job per process: every process in the pool was started ahead, none came back from a job.
  await using server = await startServer({
    agentsDir: `${ROOT}/tests/fixtures/sharing`,
    warmPool: 1,
    warmMax: 4,
    jobsPerProcess: 1,
  });
  const clients = await Promise.all(Array.from({ length: 6 }, () => connect(server.url)));
  try {
    const ready = (t: string) => sample(t, "arcp_sandbox_pool_processes", { pool: "warm" }) ?? 0;
    const readying = (t: string) =>
      sample(t, "arcp_sandbox_pool_processes", { pool: "readying" }) ?? 0;
    await burst(clients);
    // Idle: the burst of 6 asked for 6, the budget allows 4.
    const full = await scrapeUntil(server.http, (t) => ready(t) >= 4, "4 ready warm workers");
    equal(ready(full) + readying(full), 4, full);

    const submittedAt = Date.now();
    const next = await burst(clients);
    // Each job ran in a worker of its own that no job had used, and the 4 ready ones were
    // started before the burst.
    for (const r of next) equal(r.runs, 1);
    ok(
      next.filter((r) => r.loadedAt < submittedAt).length >= 4,
      JSON.stringify(next.map((r) => r.loadedAt - submittedAt)),
    );

    // Refilled for the next burst, then, with no job since, back to one.
    await scrapeUntil(server.http, (t) => ready(t) >= 4, "4 ready warm workers again");
    const after = await scrapeLong(
      server.http,
      (t) => ready(t) + readying(t) <= 1,
      "the pool back to one warm worker",
    );
    ok((sample(after, "arcp_sandbox_hosts") ?? 0) <= 2, after);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});
