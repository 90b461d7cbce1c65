/**
 * Operators see every failure: a sandbox process that dies, an agent that
 * stops beating, a socket closed with 1008, a session dropped, a hello held
 * by the tarpit. Each is triggered for real against a real server, and each
 * must be exactly one log line (with ids and reason, never a token) and one
 * step of its counter in `GET /metrics`.
 */
import { deepEqual, equal, match, ok } from "assert";
import { ROOT, startDirectServer, startServer } from "../../testing/server.ts";
import { RawWs } from "../../testing/raw_ws.ts";
import { ALL_FEATURES, connect, traceId, WsClient } from "../../testing/ws_client.ts";
import { CaptureLogger, type LogRecord, sample, scrape } from "./_observe.ts";

const FIXTURES = `${ROOT}/tests/fixtures/operations`;

/** Waits until no session has a connection attached (every close has been handled). */
async function untilNoneConnected(http: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (sample(await scrape(http), "arcp_sessions_connected") !== 0) {
    if (Date.now() > deadline) throw new Error("sessions still connected");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The line a job ended with (its accepted line names it too). */
const ended = (id: string) => (r: LogRecord) =>
  r.fields.job_id === id && r.message.startsWith("job ended");

Deno.test("a sandbox process that dies and an agent that stops beating: one line and one counter step each", async () => {
  const log = new CaptureLogger();
  await using server = await startServer({
    agentsDir: FIXTURES,
    logger: log,
    liveness: { beatIntervalMs: 200, missedBeats: 3 },
  });
  await using c = await connect(server.url);

  // Crash: the job's sandbox process is killed from outside, as a crash would end it.
  const victim = await c.submit({ agent: "pid-sleeper", input: {} });
  equal(victim.type, "job.accepted", JSON.stringify(victim.payload));
  const sleeping = await c.next(
    (e) => e.job_id === victim.job_id && e.payload?.body?.phase === "sleeping",
    15_000,
    "the sandbox process's id",
  );
  const pid = Number(sleeping.payload.body.message);
  ok(Number.isInteger(pid) && pid !== Deno.pid, `not a sandbox process id: ${pid}`);
  Deno.kill(pid, "SIGKILL");
  const crashed = (await c.untilTerminal(victim.job_id!)).at(-1)!;
  equal(crashed.payload.code, "INTERNAL_ERROR", JSON.stringify(crashed.payload));
  match(crashed.payload.message, /sandbox process exited/);
  const crashLine = await log.waitFor(ended(victim.job_id!), 5_000, "the crash line");
  equal(crashLine.level, "ERROR");
  equal(crashLine.message, "job ended: sandbox process crashed");
  deepEqual({ ...crashLine.fields, error: undefined, duration_ms: undefined }, {
    reason: "host_crash",
    job_id: victim.job_id,
    agent: "pid-sleeper@1.0.0",
    principal: "alice",
    session_id: c.sessionId,
    status: "error",
    code: "INTERNAL_ERROR",
    duration_ms: undefined,
    error: undefined,
  });
  match(String(crashLine.fields.error), /sandbox process exited .*SIGKILL/);

  // Hang: the agent's event loop blocks, its beats stop.
  const spin = await c.submit({ agent: "spin", input: {} });
  equal(spin.type, "job.accepted", JSON.stringify(spin.payload));
  const lost = (await c.untilTerminal(spin.job_id!)).at(-1)!;
  equal(lost.payload.code, "HEARTBEAT_LOST");
  const lostLine = await log.waitFor(ended(spin.job_id!), 5_000, "the heartbeat line");
  equal(lostLine.level, "WARN");
  equal(lostLine.message, "job ended: agent heartbeat lost");
  equal(lostLine.fields.reason, "heartbeat_lost");
  equal(lostLine.fields.agent, "spin@1.0.0");
  equal(lostLine.fields.principal, "alice");

  // Exactly one end line per job, and one counter step per event.
  equal(log.matching(ended(victim.job_id!)).length, 1);
  equal(log.matching(ended(spin.job_id!)).length, 1);
  const metrics = await scrape(server.http);
  equal(sample(metrics, "arcp_sandbox_crashes_total"), 1);
  equal(sample(metrics, "arcp_jobs_heartbeat_lost_total"), 1);
  equal(sample(metrics, "arcp_jobs_ended_total", { status: "error", agent: "spin@1.0.0" }), 1);
  equal(
    sample(metrics, "arcp_jobs_ended_total", { status: "error", agent: "pid-sleeper@1.0.0" }),
    1,
  );
});

Deno.test("hellos held by the tarpit, a silent socket, a lost heartbeat, a gone socket: one line and one counter step each", async () => {
  const log = new CaptureLogger();
  await using server = await startServer({
    logger: log,
    heartbeatSec: 1,
    sessions: { helloTimeoutSec: 1 },
  });

  // Eleven bad tokens from one address: the eleventh answer is held by the tarpit.
  const tokens = Array.from({ length: 11 }, () => `wrong-${crypto.randomUUID()}`);
  for (const token of tokens) {
    const b = new WsClient(server.url);
    const refused = await b.hello(token);
    equal(refused.payload.code, "UNAUTHENTICATED");
    await b.close();
  }
  const rejected = log.matching((r) => r.message === "hello rejected");
  equal(rejected.length, 11);
  ok(rejected.every((r) => r.fields.reason === "bad_token" && r.fields.addr === "127.0.0.1"));
  const throttled = rejected.filter((r) => r.fields.throttled_ms !== undefined);
  equal(throttled.length, 1);
  equal(throttled[0].fields.throttled_ms, 1000);

  // A socket that never says hello is closed with 1008.
  const silent = new WsClient(server.url);
  await silent.opened();
  equal(await silent.closed(10_000), 1008);
  const policy = await log.waitFor(
    (r) => r.message === "connection closed by policy (1008)",
    5_000,
    "the hello timeout line",
  );
  deepEqual(policy.fields, { reason: "hello_timeout", addr: "127.0.0.1", timeout_sec: 1 });

  // A client that stops answering pings loses its session's connection.
  const deaf = new WsClient(server.url, { autoPong: false });
  equal((await deaf.hello("alice-token", ALL_FEATURES)).type, "session.welcome");
  await deaf.next((e) => e.payload?.code === "HEARTBEAT_LOST", 10_000, "HEARTBEAT_LOST");
  const lost = await log.waitFor(
    (r) => r.message === "session dropped" && r.fields.session_id === deaf.sessionId,
    10_000,
    "the heartbeat drop line",
  );
  deepEqual(lost.fields, {
    reason: "heartbeat_lost",
    addr: "127.0.0.1",
    session_id: deaf.sessionId,
    principal: "alice",
  });

  // A client whose socket goes without a bye, and one that says bye (not a drop).
  const gone = await connect(server.url, "bob-token");
  const polite = await connect(server.url, "bob-token");
  polite.send("session.bye", {});
  await polite.closed();
  await gone.close();
  const goneLine = await log.waitFor(
    (r) => r.message === "session dropped" && r.fields.session_id === gone.sessionId,
    10_000,
    "the socket-gone drop line",
  );
  equal(goneLine.fields.reason, "socket_gone");
  equal(goneLine.fields.principal, "bob");
  await untilNoneConnected(server.http);

  const drops = log.matching((r) => r.message === "session dropped");
  deepEqual(drops.map((r) => r.fields.session_id).sort(), [deaf.sessionId, gone.sessionId].sort());
  const metrics = await scrape(server.http);
  equal(sample(metrics, "arcp_hellos_rejected_total", { reason: "bad_token" }), 11);
  equal(sample(metrics, "arcp_hellos_throttled_total"), 1);
  equal(sample(metrics, "arcp_policy_closes_total", { reason: "hello_timeout" }), 1);
  equal(sample(metrics, "arcp_sessions_dropped_total", { reason: "heartbeat_lost" }), 1);
  equal(sample(metrics, "arcp_sessions_dropped_total", { reason: "socket_gone" }), 1);
  // No token (bad ones included) and no resume token reaches the log.
  const text = log.text();
  for (const token of [...tokens, "alice-token", "bob-token"]) ok(!text.includes(token), token);
  ok(!/rt_[A-Za-z0-9_-]{8,}/.test(text), "a resume token was logged");
});

Deno.test("a client that stops reading is closed with 1008: one line and one counter step, not also a drop", async () => {
  const log = new CaptureLogger();
  await using server = await startDirectServer({
    logger: log,
    maxBufferedBytes: 64 * 1024,
    stallTimeoutMs: 1000,
  });
  const raw = await RawWs.open(server.url);
  try {
    const w = await raw.hello(ALL_FEATURES.filter((f) => f !== "heartbeat"));
    // A streamed result of 200 MB in 256 KiB chunks: more unread than the
    // kernel's buffers of one TCP hop hold, however far autotuning grows
    // them (tens of MiB), within seconds even on a busy machine.
    await raw.send({
      type: "job.submit",
      session_id: w.session_id,
      trace_id: traceId(),
      payload: { agent: "chunker", input: { bytes: 200_000_000, chunk_bytes: 262_144 } },
    });
    const line = await log.waitFor(
      (r) => r.message === "connection closed by policy (1008)",
      120_000,
      "the slow reader line",
    );
    equal(line.level, "WARN");
    equal(line.fields.reason, "slow_reader");
    equal(line.fields.session_id, w.session_id);
    equal(line.fields.principal, "alice");
    equal(line.fields.stall_timeout_ms, 1000);
    ok(Number(line.fields.queued_bytes) > 64 * 1024, JSON.stringify(line.fields));
  } finally {
    raw.close();
  }
  await untilNoneConnected(server.http);
  equal(log.matching((r) => r.message === "connection closed by policy (1008)").length, 1);
  equal(log.matching((r) => r.message === "session dropped").length, 0);
  const metrics = await scrape(server.http);
  equal(sample(metrics, "arcp_policy_closes_total", { reason: "slow_reader" }), 1);
  equal(sample(metrics, "arcp_sessions_dropped_total", { reason: "socket_gone" }), 0);
});
