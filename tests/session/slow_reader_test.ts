/**
 * A client that stops reading. The WebSocket class reads its socket all the
 * time, so a real non-reading client is played with a raw TCP connection
 * that does the WebSocket handshake and framing by hand and then simply
 * stops calling read(): the kernel buffers fill and the runtime's socket
 * buffer grows, exactly as with a stuck peer.
 *
 * @module
 */
import { deepEqual, equal, ok } from "assert";
import { startDirectServer, untilIdle } from "../../testing/server.ts";
import { RawWs } from "../../testing/raw_ws.ts";
import { ALL_FEATURES, type Env, traceId, WsClient } from "../../testing/ws_client.ts";

/** The seq-bearing envelopes of a list must be `from`, `from + 1`, ... without gaps or repeats. */
function assertGapFree(envs: Env[], from: number): void {
  const seqs = envs.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq!);
  deepEqual(seqs, seqs.map((_, i) => from + i), `seqs not gap-free from ${from}: ${seqs}`);
}

const FEATURES = ALL_FEATURES.filter((f) => f !== "heartbeat");
const BIG = 180_000;
// These tests are about the session's own stall watchdog, so the runtime is
// served without the connection gate: with one TCP hop, what the client
// leaves unread (JOBS × BIG, 10.8 MB) is more than that hop's kernel buffers
// hold while the client does not read, so the session's socket backs up.
// Through the gate the second hop's receive buffer can grow to tens of MB
// (tcp_rmem), so whether a client stalls there depends on the kernel;
// tests/session/non_reader_test.ts covers the gated path.
const JOBS = 60;
// Each job in a process of its own, so the results arrive one process start
// apart: sixty results arriving back to back from recycled processes can be
// absorbed whole by Linux's buffer autotuning on loopback, and nothing stalls.
// Sixty fresh jobs at once are more than a busy 2-core machine starts within
// the default `sandboxQueueMs` (refused at submit) or `sandboxWaitMs` (ended
// sandbox_busy once accepted): they are let wait, as the test is about reading.
const SERVER = {
  maxBufferedBytes: 64 * 1024,
  stallTimeoutMs: 1500,
  jobsPerProcess: 1,
  sandboxQueueMs: 60_000,
  sandboxWaitMs: 60_000,
};

/** Submits JOBS echo jobs whose results are BIG characters each, without reading. */
async function flood(raw: RawWs, sessionId: string): Promise<string[]> {
  const traces: string[] = [];
  for (let i = 0; i < JOBS; i++) {
    const t = traceId();
    traces.push(t);
    await raw.send({
      type: "job.submit",
      session_id: sessionId,
      trace_id: t,
      payload: { agent: "echo", input: String(i % 10).repeat(BIG) },
    });
  }
  return traces;
}

Deno.test("a client that stops reading is disconnected after the stall timeout, and a resume loses nothing", async () => {
  await using server = await startDirectServer(SERVER);
  const raw = await RawWs.open(server.url);
  try {
    const w = await raw.hello(FEATURES);
    const sessionId = w.session_id!;
    const traces = await flood(raw, sessionId);
    await untilIdle(server.http);
    // Every job is done; the stall began while they ran. Give the watchdog its timeout.
    await new Promise((r) => setTimeout(r, 1500 + 1000));

    // Now read what the runtime managed to send before it gave up.
    const got: Env[] = [];
    let closeCode: number | undefined;
    while (true) {
      const f = await raw.readFrame(5_000);
      if (!f) break;
      if (f.opcode === 1) got.push(JSON.parse(new TextDecoder().decode(f.payload)));
      if (f.opcode === 8) {
        closeCode = f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;
        break;
      }
    }
    // The close frame waits behind the unread data; a close that cannot get
    // through within its grace is dropped, so the reader may see either.
    ok(closeCode === undefined || closeCode === 1008, `closed with ${closeCode}`);
    const seqd = got.filter((e) => e.event_seq !== undefined);
    assertGapFree(seqd, 1);
    const terminalsBefore = seqd.filter((e) => e.type === "job.result").length;
    ok(terminalsBefore < JOBS, "the client was never stalled: everything arrived");
    const last = seqd.at(-1)?.event_seq ?? 0;

    await using c = new WsClient(server.url);
    const w2 = await c.hello("alice-token", FEATURES, {
      session_id: sessionId,
      resume_token: w.payload.resume_token,
      last_event_seq: last,
    });
    equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
    const rest: Env[] = [];
    while (rest.filter((e) => e.type === "job.result").length + terminalsBefore < JOBS) {
      rest.push(await c.next((e) => e.event_seq !== undefined, 15_000));
    }
    assertGapFree(rest, last + 1);
    const all = [...seqd, ...rest];
    const results = all.filter((e) => e.type === "job.result");
    equal(results.length, JOBS);
    equal(new Set(results.map((e) => e.job_id)).size, JOBS);
    deepEqual(new Set(results.map((e) => e.trace_id)), new Set(traces));
    for (const r of results) {
      equal(r.payload.result.echo.length, BIG);
    }
  } finally {
    raw.close();
  }
});

Deno.test("a client that pauses reading for less than the stall timeout catches up with nothing lost", async () => {
  await using server = await startDirectServer(SERVER);
  const raw = await RawWs.open(server.url);
  try {
    const w = await raw.hello(FEATURES);
    const traces = await flood(raw, w.session_id!);
    await new Promise((r) => setTimeout(r, 700));
    const got: Env[] = [];
    while (got.filter((e) => e.type === "job.result").length < JOBS) {
      const f = await raw.readFrame(10_000);
      if (!f) throw new Error(`connection ended after ${got.length} envelopes`);
      if (f.opcode === 8) throw new Error("the runtime closed a client that was reading");
      if (f.opcode === 1) got.push(JSON.parse(new TextDecoder().decode(f.payload)));
    }
    assertGapFree(got, 1);
    const results = got.filter((e) => e.type === "job.result");
    deepEqual(new Set(results.map((e) => e.trace_id)), new Set(traces));
    for (const r of results) equal(r.payload.result.echo.length, BIG);
  } finally {
    raw.close();
  }
});
