import { deepEqual, equal, match, notEqual, ok } from "assert";
import {
  type ChildServer,
  startChildServer,
  startServer,
  untilIdle,
} from "../../testing/server.ts";
import { ALL_FEATURES, type Env, WsClient } from "../../testing/ws_client.ts";
import { PART_CHARS, READ_WINDOW_CHARS } from "../../src/store/large_value.ts";

/** The seq-bearing envelopes of a list must be `from`, `from + 1`, ... without gaps or repeats. */
function assertGapFree(envs: Env[], from: number): void {
  const seqs = envs.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq!);
  deepEqual(seqs, seqs.map((_, i) => from + i), `seqs not gap-free from ${from}: ${seqs}`);
}

/** `current` of every progress event in a list, in order. */
function ticks(envs: Env[]): number[] {
  return envs.filter((e) => e.type === "job.event" && e.payload.kind === "progress")
    .map((e) => e.payload.body.current);
}

/** 1..n */
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Takes a job's seq-bearing envelopes until a progress event with `current >= n`. */
async function readUntilTick(c: WsClient, jobId: string, n: number): Promise<Env[]> {
  const out: Env[] = [];
  while (true) {
    const e = await c.next((x) => x.job_id === jobId && x.event_seq !== undefined);
    out.push(e);
    if (e.type !== "job.event") throw new Error(`job ended early: ${JSON.stringify(e.payload)}`);
    if (e.payload.kind === "progress" && e.payload.body.current >= n) return out;
  }
}

/** Opens a new socket and resumes a session. */
async function resume(
  url: string,
  session_id: string,
  resume_token: string,
  last_event_seq: number,
  token = "alice-token",
): Promise<{ c: WsClient; w: Env }> {
  const c = new WsClient(url);
  const w = await c.hello(token, ALL_FEATURES, { session_id, resume_token, last_event_seq });
  return { c, w };
}

Deno.test("resume mid-job: same session, rotated token, gap-free replay from last+1 through the terminal; the old token is dead", async () => {
  await using server = await startServer();
  const c1 = new WsClient(server.url);
  const w1 = await c1.hello("alice-token");
  const acc = await c1.submit({ agent: "ticker", input: { count: 40, interval_ms: 15 } });
  equal(acc.type, "job.accepted");
  const jobId = acc.job_id!;
  const before = await readUntilTick(c1, jobId, 10);
  assertGapFree(before, 1);
  const last = before.at(-1)!.event_seq!;
  await c1.close();

  const { c: c2, w: w2 } = await resume(server.url, c1.sessionId, w1.payload.resume_token, last);
  await using _c2 = c2;
  equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
  equal(w2.session_id, c1.sessionId);
  notEqual(w2.payload.resume_token, w1.payload.resume_token);
  ok(w2.payload.resume_token.length >= 22);
  const rest = await c2.untilTerminal(jobId);
  equal(rest[0].event_seq, last + 1);
  assertGapFree(rest, last + 1);
  deepEqual([...ticks(before), ...ticks(rest)], range(1, 40));
  const end = rest.at(-1)!;
  equal(end.type, "job.result");
  deepEqual(end.payload.result, { ticks: 40 });
  // Nothing but the job's envelopes came before the terminal.
  ok(rest.every((e) => e.session_id === c1.sessionId && e.job_id === jobId));

  // The token the first welcome gave is no longer current.
  const { c: c3, w: w3 } = await resume(server.url, c1.sessionId, w1.payload.resume_token, last);
  equal(w3.type, "session.error");
  equal(w3.payload.code, "RESUME_WINDOW_EXPIRED");
  equal(w3.payload.retryable, false);
  notEqual(w3.session_id, c1.sessionId);
  ok((await c3.closed()) !== undefined);
  // A refused resume does not disturb the attached connection.
  equal(c2.closeCode, undefined);
  const req = c2.send("session.list_jobs", {});
  const jobs = await c2.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
  equal(jobs.payload.jobs.find((j: { job_id: string }) => j.job_id === jobId)?.status, "success");
});

Deno.test("resume is refused with RESUME_WINDOW_EXPIRED for a wrong token, another principal, an unknown session, or a seq beyond the session's last", async () => {
  await using server = await startServer();
  const c1 = new WsClient(server.url);
  const w1 = await c1.hello("alice-token");
  const acc = await c1.submit({ agent: "echo", input: "x" });
  const out = await c1.untilTerminal(acc.job_id!);
  const lastSeq = out.at(-1)!.event_seq!;
  await c1.close();
  const sid = c1.sessionId;
  const token = w1.payload.resume_token;

  const cases: Array<[string, string, string, number, string]> = [
    [
      "wrong token",
      sid,
      token.slice(0, -2) + (token.endsWith("AA") ? "BB" : "AA"),
      lastSeq,
      "alice-token",
    ],
    ["another principal with the right token", sid, token, lastSeq, "bob-token"],
    ["unknown session", "sess_01J00000000000000000000000", token, lastSeq, "alice-token"],
    ["last_event_seq above the session's last", sid, token, lastSeq + 1, "alice-token"],
  ];
  for (const [what, session, rt, seq, bearer] of cases) {
    const { c, w } = await resume(server.url, session, rt, seq, bearer);
    equal(w.type, "session.error", what);
    equal(w.payload.code, "RESUME_WINDOW_EXPIRED", what);
    equal(w.payload.retryable, false, what);
    match(w.session_id!, /^sess_/, what);
    notEqual(w.session_id, sid, what);
    ok((await c.closed()) !== undefined, `${what}: socket should close`);
  }

  // None of the refusals burned the real token.
  const { c, w } = await resume(server.url, sid, token, lastSeq);
  await using _c = c;
  equal(w.type, "session.welcome", JSON.stringify(w.payload));
  equal(w.session_id, sid);
});

Deno.test("a resume while the old socket is still open takes the session over and closes the old socket", async () => {
  await using server = await startServer();
  const c1 = new WsClient(server.url);
  await using _c1 = c1;
  const w1 = await c1.hello("alice-token");
  // A fast job, so events are in flight while the session changes hands.
  const acc = await c1.submit({ agent: "ticker", input: { count: 300, interval_ms: 1 } });
  const jobId = acc.job_id!;
  const before = await readUntilTick(c1, jobId, 40);
  const last = before.at(-1)!.event_seq!;

  const { c: c2, w: w2 } = await resume(server.url, c1.sessionId, w1.payload.resume_token, last);
  await using _c2 = c2;
  equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
  equal(w2.session_id, c1.sessionId);
  ok((await c1.closed(5000)) !== undefined, "old socket should be closed by the takeover");
  const rest = await c2.untilTerminal(jobId);
  assertGapFree(rest, last + 1);
  deepEqual([...ticks(before), ...ticks(rest)], range(1, 300));
  equal(rest.at(-1)!.type, "job.result");
  // The old socket saw nothing the new one did not also get: no seq went to both after `last`
  // except as an exact copy (same envelope id).
  const newIds = new Map(rest.map((e) => [e.event_seq, e.id]));
  for (const e of c1.seen.filter((x) => (x.event_seq ?? 0) > last)) {
    equal(newIds.get(e.event_seq), e.id, `seq ${e.event_seq} differs between old and new socket`);
  }
});

Deno.test("resume after the window has passed is RESUME_WINDOW_EXPIRED; within it, it works", async () => {
  await using server = await startServer({ sessions: { resumeWindowSec: 1 } });
  const a = new WsClient(server.url);
  const wa = await a.hello("alice-token");
  const b = new WsClient(server.url);
  const wb = await b.hello("alice-token");
  await a.close();
  await b.close();

  // Well inside the window.
  const { c: ra, w: rwa } = await resume(server.url, a.sessionId, wa.payload.resume_token, 0);
  equal(rwa.type, "session.welcome", JSON.stringify(rwa.payload));
  await ra.close();

  await new Promise((r) => setTimeout(r, 1600));
  const { c: rb, w: rwb } = await resume(server.url, b.sessionId, wb.payload.resume_token, 0);
  equal(rwb.type, "session.error");
  equal(rwb.payload.code, "RESUME_WINDOW_EXPIRED");
  ok((await rb.closed()) !== undefined);
});

Deno.test("a session connected for longer than the window is resumable for a whole window after it detaches", async () => {
  await using server = await startServer({ sessions: { resumeWindowSec: 1 } });
  const a = new WsClient(server.url);
  const wa = await a.hello("alice-token");
  // Connected past its window: the window counts from the detach, not from the hello.
  await new Promise((r) => setTimeout(r, 1600));
  a.send("session.ping", { nonce: "n", sent_at: new Date().toISOString() });
  equal((await a.next((e) => e.type === "session.pong", 5_000, "pong")).type, "session.pong");
  await a.close();
  const { c: ra, w: rwa } = await resume(server.url, a.sessionId, wa.payload.resume_token, 0);
  equal(rwa.type, "session.welcome", JSON.stringify(rwa.payload));
  // Detached again, it is evicted once its window passes.
  await ra.close();
  await new Promise((r) => setTimeout(r, 1600));
  const { c: late, w: lw } = await resume(
    server.url,
    a.sessionId,
    rwa.payload.resume_token,
    0,
  );
  equal(lw.type, "session.error");
  equal(lw.payload.code, "RESUME_WINDOW_EXPIRED");
  ok((await late.closed()) !== undefined);
});

Deno.test("jobs keep running while the session is detached; their events arrive on resume", async () => {
  await using server = await startServer();
  const c1 = new WsClient(server.url);
  const w1 = await c1.hello("alice-token");
  const acc = await c1.submit({ agent: "ticker", input: { count: 10, interval_ms: 60 } });
  const jobId = acc.job_id!;
  const first = await c1.next((e) => e.job_id === jobId && e.event_seq !== undefined);
  equal(first.payload.body.phase, "running");
  await c1.close();

  // Wait until the job has finished while nobody is attached.
  await untilIdle(server.http);
  const { c: c2, w } = await resume(
    server.url,
    c1.sessionId,
    w1.payload.resume_token,
    first.event_seq!,
  );
  await using _c2 = c2;
  equal(w.type, "session.welcome");
  const rest = await c2.untilTerminal(jobId);
  assertGapFree(rest, first.event_seq! + 1);
  deepEqual(ticks(rest), range(1, 10));
  equal(rest.at(-1)!.type, "job.result");
  deepEqual(rest.at(-1)!.payload.result, { ticks: 10 });
});

Deno.test("a resume of a long detached log crosses many read windows and a value stored in parts: every envelope once, in order, from any seq", async () => {
  await using server = await startServer();
  // No `ack`: nothing is freed and no back-pressure slows the ticker while detached.
  const features = ["progress"];
  const c1 = new WsClient(server.url);
  const w1 = await c1.hello("alice-token", features);
  // A result larger than one KV value: the log stores it as a head and parts.
  const big = "ß".repeat(2 * PART_CHARS + 123);
  const echo = await c1.submit({ agent: "echo", input: big });
  const echoed = (await c1.untilTerminal(echo.job_id!)).at(-1)!;
  equal(echoed.payload.result.echo, big);
  const acc = await c1.submit({ agent: "ticker", input: { count: 8000, interval_ms: 0 } });
  const jobId = acc.job_id!;
  await c1.close();
  await untilIdle(server.http);

  /** Resumes after `last` and takes every seq-bearing envelope through the ticker's result. */
  let token = w1.payload.resume_token;
  const replayAfter = async (last: number): Promise<Env[]> => {
    const c = new WsClient(server.url);
    await using _c = c;
    const w = await c.hello("alice-token", features, {
      session_id: c1.sessionId,
      resume_token: token,
      last_event_seq: last,
    });
    equal(w.type, "session.welcome", JSON.stringify(w.payload));
    token = w.payload.resume_token;
    const got: Env[] = [];
    while (got.at(-1)?.type !== "job.result" || got.at(-1)?.job_id !== jobId) {
      got.push(await c.next((e) => e.event_seq !== undefined, 20_000, "replayed envelope"));
    }
    return got;
  };

  const all = await replayAfter(0);
  assertGapFree(all, 1);
  const chars = all.reduce((n, e) => n + JSON.stringify(e).length, 0);
  ok(chars > 3 * READ_WINDOW_CHARS, `the log (${chars} chars) spans many read windows`);
  const bigResult = all.find((e) => e.job_id === echo.job_id && e.type === "job.result");
  equal(bigResult?.payload.result.echo, big);
  deepEqual(ticks(all.filter((e) => e.job_id === jobId)), range(1, 8000));
  // From inside the log: the first envelope after the echo's result, and one mid-ticker.
  for (const last of [bigResult!.event_seq!, Math.floor(all.length / 2)]) {
    const rest = await replayAfter(last);
    assertGapFree(rest, last + 1);
    deepEqual(rest.map((e) => e.id), all.slice(last).map((e) => e.id), `after seq ${last}`);
  }
});

Deno.test("cancel authority survives a resume: the resumed session cancels its job", async () => {
  await using server = await startServer();
  const c1 = new WsClient(server.url);
  const w1 = await c1.hello("alice-token");
  const acc = await c1.submit({ agent: "sleeper", input: { ms: 30_000 } });
  const jobId = acc.job_id!;
  await c1.next((e) => e.job_id === jobId && e.payload?.body?.phase === "sleeping");
  const last = Math.max(...c1.seen.map((e) => e.event_seq ?? 0));
  await c1.close();

  const { c: c2, w } = await resume(server.url, c1.sessionId, w1.payload.resume_token, last);
  await using _c2 = c2;
  equal(w.type, "session.welcome");
  c2.send("job.cancel", { reason: "from the resumed session" }, { job_id: jobId });
  const rest = await c2.untilTerminal(jobId, 8_000);
  deepEqual(rest.map((e) => e.type), ["job.cancelled", "job.error"]);
  equal(rest[1].payload.code, "CANCELLED");
  equal(rest[1].payload.final_status, "cancelled");
  equal(rest[1].event_seq, last + 1);
});

Deno.test("resume after a runtime crash: replay is complete and gap-free, the interrupted job ends INTERNAL_ERROR, seqs are never reused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_resume_" });
  const kvPath = `${dir}/arcp.kv`;
  let second: ChildServer | undefined;
  try {
    const first = await startChildServer(kvPath);
    const c1 = new WsClient(first.url);
    let w1: Env;
    let jobId: string;
    let last: number;
    try {
      w1 = await c1.hello("alice-token");
      equal(w1.type, "session.welcome");
      const acc = await c1.submit({ agent: "ticker", input: { count: 200, interval_ms: 10 } });
      equal(acc.type, "job.accepted");
      jobId = acc.job_id!;
      const before = await readUntilTick(c1, jobId, 5);
      assertGapFree(before, 1);
      last = before.at(-1)!.event_seq!;
      // Let the client see (and so the old process commit) some events beyond `last`.
      await readUntilTick(c1, jobId, 12);
    } finally {
      await first.stop("SIGKILL");
    }
    await c1.closed();
    const seenBeyond = c1.seen.filter((e) => (e.event_seq ?? 0) > last);
    ok(seenBeyond.length >= 7, `only ${seenBeyond.length} events seen beyond ${last}`);
    const oldMax = Math.max(...seenBeyond.map((e) => e.event_seq!));

    second = await startChildServer(kvPath);
    const { c: c2, w } = await resume(second.url, c1.sessionId, w1.payload.resume_token, last);
    await using _c2 = c2;
    equal(w.type, "session.welcome", JSON.stringify(w.payload));
    equal(w.session_id, c1.sessionId);
    notEqual(w.payload.resume_token, w1.payload.resume_token);
    const rest = await c2.untilTerminal(jobId);
    assertGapFree(rest, last + 1);
    // Everything the old process delivered is in the replay, byte for byte the same envelope.
    const byId = new Map(rest.map((e) => [e.event_seq, e]));
    for (const e of seenBeyond) {
      deepEqual(byId.get(e.event_seq), e, `seq ${e.event_seq} replayed differently`);
    }
    // Ticks continue from where the client was, each exactly once.
    const lastTick = ticks(c1.seen.filter((e) => e.job_id === jobId && e.event_seq! <= last)).at(
      -1,
    )!;
    const replayedTicks = ticks(rest);
    deepEqual(replayedTicks, range(lastTick + 1, lastTick + replayedTicks.length));
    const end = rest.at(-1)!;
    equal(end.type, "job.error");
    equal(end.payload.final_status, "error");
    equal(end.payload.code, "INTERNAL_ERROR");
    equal(end.payload.retryable, true);
    equal(rest.filter((e) => e.type === "job.error" || e.type === "job.result").length, 1);
    ok(end.event_seq! > oldMax, `terminal seq ${end.event_seq} reuses a seq <= ${oldMax}`);

    // New work continues the seq space above everything the old process handed out.
    const acc2 = await c2.submit({ agent: "echo", input: "after restart" });
    equal(acc2.type, "job.accepted");
    const out2 = await c2.untilTerminal(acc2.job_id!);
    assertGapFree(out2, end.event_seq! + 1);
    ok(out2[0].event_seq! > oldMax);
    equal(out2.at(-1)!.type, "job.result");
  } finally {
    await second?.stop("SIGTERM");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
