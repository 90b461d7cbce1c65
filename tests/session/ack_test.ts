import { deepEqual, equal, ok } from "assert";
import { listTexts } from "../../src/store/large_value.ts";
import { startServer } from "../../testing/server.ts";
import { ALL_FEATURES, connect, type Env, WsClient } from "../../testing/ws_client.ts";

/** The seq-bearing envelopes of a list must be `from`, `from + 1`, ... without gaps or repeats. */
function assertGapFree(envs: Env[], from: number): void {
  const seqs = envs.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq!);
  deepEqual(seqs, seqs.map((_, i) => from + i), `seqs not gap-free from ${from}: ${seqs}`);
}

/** from..to */
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Waits until every earlier request of the session has been handled. */
async function flush(c: WsClient): Promise<void> {
  const req = c.send("session.list_jobs", {});
  await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
}

/** Runs a ticker to its end: seqs 1 (running) .. count + 2 (result). */
async function runTicker(c: WsClient, count: number, interval = 0): Promise<Env[]> {
  const acc = await c.submit({ agent: "ticker", input: { count, interval_ms: interval } });
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  return await c.untilTerminal(acc.job_id!);
}

/** The seqs a session's log still holds in the KV file. */
async function loggedSeqs(kvPath: string, sessionId: string): Promise<number[]> {
  const kv = await Deno.openKv(kvPath);
  try {
    const seqs: number[] = [];
    for await (const [seq] of listTexts(kv, ["v1", "slog", sessionId])) seqs.push(seq);
    return seqs;
  } finally {
    kv.close();
  }
}

Deno.test("session.ack frees the acknowledged part of the log and keeps the rest", async () => {
  await using server = await startServer();
  const acker = await connect(server.url);
  const keeper = await connect(server.url);
  const out = await runTicker(acker, 10);
  assertGapFree(out, 1);
  equal(out.at(-1)!.event_seq, 12);
  equal((await runTicker(keeper, 10)).at(-1)!.event_seq, 12);
  acker.send("session.ack", { last_processed_seq: 6 });
  await flush(acker);
  await acker.close();
  await keeper.close();
  await server.close();

  deepEqual(await loggedSeqs(server.kvPath, acker.sessionId), range(7, 12));
  // A session that did not ack keeps everything (the control).
  deepEqual(await loggedSeqs(server.kvPath, keeper.sessionId), range(1, 12));
});

Deno.test("resume below the acknowledged floor is RESUME_WINDOW_EXPIRED; at the floor it replays the rest", async () => {
  await using server = await startServer();
  const c1 = new WsClient(server.url);
  const w1 = await c1.hello("alice-token");
  await runTicker(c1, 10);
  c1.send("session.ack", { last_processed_seq: 6 });
  await flush(c1);
  await c1.close();
  const resume = (last: number) => ({
    session_id: c1.sessionId,
    resume_token: w1.payload.resume_token,
    last_event_seq: last,
  });

  const below = new WsClient(server.url);
  const refused = await below.hello("alice-token", ALL_FEATURES, resume(5));
  equal(refused.type, "session.error");
  equal(refused.payload.code, "RESUME_WINDOW_EXPIRED");
  ok((await below.closed()) !== undefined);

  await using at = new WsClient(server.url);
  const w = await at.hello("alice-token", ALL_FEATURES, resume(6));
  equal(w.type, "session.welcome", JSON.stringify(w.payload));
  const replayed: Env[] = [];
  while (replayed.length < 6) replayed.push(await at.next((e) => e.event_seq !== undefined));
  assertGapFree(replayed, 7);
  equal(replayed.at(-1)!.type, "job.result");
});

Deno.test("with ack negotiated, an unacknowledged backlog over backPressureLag gets a back_pressure status on the job", async () => {
  await using server = await startServer({ backPressureLag: 20 });
  await using c = await connect(server.url);
  const out = await runTicker(c, 60, 0);
  const bp = out.filter((e) =>
    e.payload.kind === "status" && e.payload.body.phase === "back_pressure"
  );
  ok(bp.length >= 1, "expected a back_pressure status event");
  equal(bp[0].type, "job.event");
  equal(bp[0].job_id, out[0].job_id);
  ok(bp[0].event_seq! > 21, `back_pressure at seq ${bp[0].event_seq}, before the lag of 20`);
  assertGapFree(out, 1);
  equal(out.at(-1)!.type, "job.result");
  deepEqual(out.at(-1)!.payload.result, { ticks: 60 });
});

Deno.test("a client that acks as it goes never sees back_pressure", async () => {
  await using server = await startServer({ backPressureLag: 20 });
  await using c = await connect(server.url);
  const acc = await c.submit({ agent: "ticker", input: { count: 60, interval_ms: 15 } });
  const out: Env[] = [];
  while (!out.some((e) => e.type === "job.result" || e.type === "job.error")) {
    const e = await c.next((x) => x.job_id === acc.job_id && x.event_seq !== undefined);
    out.push(e);
    c.send("session.ack", { last_processed_seq: e.event_seq });
  }
  equal(out.at(-1)!.type, "job.result");
  ok(!out.some((e) => e.payload.kind === "status" && e.payload.body.phase === "back_pressure"));
});

Deno.test("without ack negotiated there is no back_pressure", async () => {
  await using server = await startServer({ backPressureLag: 20 });
  await using c = await connect(server.url, "alice-token", ALL_FEATURES.filter((f) => f !== "ack"));
  const out = await runTicker(c, 60, 0);
  ok(!out.some((e) => e.payload.kind === "status" && e.payload.body.phase === "back_pressure"));
  assertGapFree(out, 1);
  equal(out.length, 62);
  // And session.ack itself is refused without the feature.
  c.send("session.ack", { last_processed_seq: 1 });
  const err = await c.next((e) => e.type === "session.error");
  equal(err.payload.code, "INVALID_REQUEST");
});

Deno.test("a job's history outlives the owner's acks: a subscriber still gets all of it", async () => {
  await using server = await startServer();
  await using owner = await connect(server.url);
  await using sub = await connect(server.url);
  const out = await runTicker(owner, 8);
  owner.send("session.ack", { last_processed_seq: out.at(-1)!.event_seq });
  await flush(owner);
  sub.send("job.subscribe", { job_id: out[0].job_id, history: true });
  equal((await sub.next((e) => e.job_id === out[0].job_id)).type, "job.subscribed");
  const mine = await sub.untilTerminal(out[0].job_id!);
  deepEqual(mine.map((e) => e.payload), out.map((e) => e.payload));
});
