import { deepEqual, equal, match, ok } from "assert";
import { startServer } from "../../testing/server.ts";
import { ALL_FEATURES, connect, type Env, WsClient } from "../../testing/ws_client.ts";

/** The seq-bearing envelopes of a list must be `from`, `from + 1`, ... without gaps or repeats. */
function assertGapFree(envs: Env[], from: number): void {
  const seqs = envs.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq!);
  deepEqual(seqs, seqs.map((_, i) => from + i), `seqs not gap-free from ${from}: ${seqs}`);
}

Deno.test("a client that never answers pings gets session.ping, then HEARTBEAT_LOST and a closed socket; its job runs on and the session resumes", async () => {
  await using server = await startServer({ heartbeatSec: 1 });
  const silent = new WsClient(server.url, { autoPong: false });
  const w1 = await silent.hello("alice-token");
  equal(w1.type, "session.welcome");
  equal(w1.payload.heartbeat_interval_sec, 1);
  const sentAt = Date.now();
  const acc = await silent.submit({ agent: "ticker", input: { count: 30, interval_ms: 100 } });
  equal(acc.type, "job.accepted");
  const jobId = acc.job_id!;
  // From here on the client sends nothing at all.

  const ping = await silent.next((e) => e.type === "session.ping", 5_000, "session.ping");
  equal(ping.session_id, silent.sessionId);
  equal(ping.event_seq, undefined);
  ok(typeof ping.payload.nonce === "string" && ping.payload.nonce.length > 0);
  match(ping.payload.sent_at, /Z$/);
  const lost = await silent.next((e) => e.type === "session.error", 5_000, "HEARTBEAT_LOST");
  const lostAfter = Date.now() - sentAt;
  equal(lost.payload.code, "HEARTBEAT_LOST");
  equal(lost.session_id, silent.sessionId);
  ok(lostAfter >= 1800, `HEARTBEAT_LOST after only ${lostAfter} ms of silence`);
  ok(silent.seen.indexOf(ping) < silent.seen.indexOf(lost));
  ok((await silent.closed(3_000)) !== undefined, "socket should close after HEARTBEAT_LOST");
  ok(Date.now() - sentAt < 6_000);

  // The job was not touched: the rest of it arrives on resume.
  const got = silent.seen.filter((e) => e.job_id === jobId && e.event_seq !== undefined);
  ok(!got.some((e) => e.type === "job.result" || e.type === "job.error"), "job ended too soon");
  assertGapFree(got, 1);
  const last = got.at(-1)!.event_seq!;
  await using again = new WsClient(server.url);
  const w2 = await again.hello("alice-token", ALL_FEATURES, {
    session_id: silent.sessionId,
    resume_token: w1.payload.resume_token,
    last_event_seq: last,
  });
  equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
  const rest = await again.untilTerminal(jobId);
  assertGapFree(rest, last + 1);
  const ticks = [...got, ...rest].filter((e) => e.payload.kind === "progress")
    .map((e) => e.payload.body.current);
  deepEqual(ticks, Array.from({ length: 30 }, (_, i) => i + 1));
  equal(rest.at(-1)!.type, "job.result");
});

Deno.test("a client that answers pings stays connected", async () => {
  await using server = await startServer({ heartbeatSec: 1 });
  await using c = await connect(server.url);
  await new Promise((r) => setTimeout(r, 4_500));
  equal(c.closeCode, undefined);
  const pings = c.seen.filter((e) => e.type === "session.ping");
  ok(pings.length >= 2, `expected the runtime to keep pinging, got ${pings.length} pings`);
  ok(pings.every((p) => p.event_seq === undefined));
  equal(new Set(pings.map((p) => p.payload.nonce)).size, pings.length);
  ok(!c.seen.some((e) => e.type === "session.error"));
  // Still a working session.
  const acc = await c.submit({ agent: "echo", input: 1 });
  equal((await c.untilTerminal(acc.job_id!)).at(-1)!.type, "job.result");
});

Deno.test("without heartbeat negotiated there is no interval, no ping, and silence is not fatal", async () => {
  await using server = await startServer({ heartbeatSec: 1 });
  const features = ALL_FEATURES.filter((f) => f !== "heartbeat");
  await using c = new WsClient(server.url, { autoPong: false });
  const w = await c.hello("alice-token", features);
  equal(w.type, "session.welcome");
  equal(w.payload.heartbeat_interval_sec, undefined);
  await new Promise((r) => setTimeout(r, 2_600));
  equal(c.closeCode, undefined);
  ok(!c.seen.some((e) => e.type === "session.ping" || e.type === "session.error"));
});
