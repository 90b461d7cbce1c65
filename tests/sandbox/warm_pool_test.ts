/**
 * The warm pool while fresh jobs are in flight: a refill waits for their
 * outcomes, but not for a job that runs on.
 *
 * @module
 */
import { equal } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";
import { sample, scrapeUntil } from "../operations/_observe.ts";

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
