/**
 * Per-iteration costs of event streams: a 1,000-event `ticker` job end to
 * end, and resuming a detached session whose log holds 1,000 events
 * (hello→last replayed envelope).
 *
 * @module
 */
import { BenchClient, removeOnUnload, startBenchServer, waitIdle } from "./_util.ts";

const EVENTS = 1000;
const server = await startBenchServer();
removeOnUnload(server);
const client = await BenchClient.connect(server.url);

// A detached session with EVENTS ticker events (plus status and result) in its log.
const detached = await BenchClient.connect(server.url);
const logged = detached.submit("ticker", { count: EVENTS, interval_ms: 0 });
await new Promise<void>((resolve) => {
  const poll = () => logged.acceptedAt !== undefined ? resolve() : setTimeout(poll, 1);
  poll();
});
let resume = { session_id: detached.sessionId, resume_token: detached.resumeToken };
await detached.close();
await waitIdle(server.http);

Deno.bench({
  name: `ticker job, ${EVENTS} events, submit→result`,
  group: "streams",
  n: 20,
  warmup: 3,
  async fn() {
    await client.run("ticker", { count: EVENTS, interval_ms: 0 });
  },
});

Deno.bench({
  name: `resume a detached session, replay ${EVENTS}+ events from seq 0`,
  group: "streams",
  n: 30,
  warmup: 3,
  async fn() {
    const { promise, resolve } = Promise.withResolvers<void>();
    const c = await BenchClient.connect(server.url, {
      resume: { ...resume, last_event_seq: 0 },
      onEnvelope: (env) => {
        if (env.type === "job.result" && env.trace_id === logged.traceId) resolve();
      },
    });
    await promise;
    resume = { session_id: c.sessionId, resume_token: c.resumeToken };
    await c.close();
  },
});
