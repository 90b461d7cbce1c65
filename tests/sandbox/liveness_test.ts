/**
 * Agent liveness is configurable: a blocked event loop is caught after the
 * configured number of missed beats, while an agent that merely awaits
 * keeps beating.
 */
import { equal, ok } from "assert";
import { ROOT, startServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";

Deno.test("with beats every 200 ms and 3 allowed misses, a busy loop ends HEARTBEAT_LOST quickly and a sleeper does not", async () => {
  await using server = await startServer({
    agentsDir: `${ROOT}/tests/fixtures/hostile`,
    liveness: { beatIntervalMs: 200, missedBeats: 3 },
  });
  await using c = await connect(server.url);
  const sleeper = await c.submit({ agent: "sleeper", input: { ms: 2500 } });
  const spin = await c.submit({ agent: "spin", input: {} });
  const started = Date.now();
  const spinEnd = (await c.untilTerminal(spin.job_id!, 15_000)).at(-1)!;
  const took = Date.now() - started;
  equal(spinEnd.payload.code, "HEARTBEAT_LOST");
  equal(spinEnd.payload.final_status, "error");
  equal(spinEnd.payload.retryable, false);
  ok(took < 4000, `a blocked loop should be caught within a few 200 ms beats, took ${took} ms`);
  const sleeperEnd = (await c.untilTerminal(sleeper.job_id!, 15_000)).at(-1)!;
  equal(sleeperEnd.type, "job.result");
  equal(sleeperEnd.payload.result.slept_ms, 2500);
});
