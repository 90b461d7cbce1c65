import { deepEqual, equal, match, ok } from "assert";
import { ROOT, startServer } from "../../testing/server.ts";
import { ALL_FEATURES, connect, type Env, WsClient } from "../../testing/ws_client.ts";

/**
 * Agents for these tests: `burst` emits ticks in bursts with quiet pauses
 * between them, so a test can subscribe while the job is alive but silent
 * and the outcome does not depend on timing.
 */
const STREAM_AGENTS = `${ROOT}/tests/fixtures/stream_agents`;

/** The seq-bearing envelopes of a list must be `from`, `from + 1`, ... without gaps or repeats. */
function assertGapFree(envs: Env[], from: number): void {
  const seqs = envs.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq!);
  deepEqual(seqs, seqs.map((_, i) => from + i), `seqs not gap-free from ${from}: ${seqs}`);
}

/** What a job's seq-bearing envelope says, without the per-session stamping. */
function content(e: Env): unknown {
  return { type: e.type, job_id: e.job_id, trace_id: e.trace_id, payload: e.payload };
}

/** `current` of every progress event in a list, in order. */
function ticks(envs: Env[]): number[] {
  return envs.filter((e) => e.type === "job.event" && e.payload.kind === "progress")
    .map((e) => e.payload.body.current);
}

/** The highest `event_seq` a client has received so far. */
function maxSeq(c: WsClient): number {
  return Math.max(0, ...c.seen.map((e) => e.event_seq ?? 0));
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

/** Submits a ticker and returns its job id. */
async function ticker(c: WsClient, count: number, interval: number): Promise<string> {
  const acc = await c.submit({ agent: "ticker", input: { count, interval_ms: interval } });
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  return acc.job_id!;
}

/** Submits a `burst` job and returns its job id. */
async function burst(c: WsClient, bursts: number[], pause = 800): Promise<string> {
  const acc = await c.submit({ agent: "burst", input: { bursts, pause_ms: pause } });
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  return acc.job_id!;
}

/** 1..n, from..to */
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Runs a one-tick job to its end, so the session has some seqs of its own. */
async function warmUp(c: WsClient): Promise<void> {
  const id = await burst(c, [1]);
  equal((await c.untilTerminal(id)).at(-1)!.type, "job.result");
}

/** Sends a subscribe and waits for `job.subscribed` (or a session.error). */
async function subscribe(
  c: WsClient,
  payload: Record<string, unknown>,
): Promise<Env> {
  c.send("job.subscribe", payload);
  return await c.next(
    (e) =>
      (e.type === "job.subscribed" && e.job_id === payload.job_id) ||
      e.type === "session.error",
    10_000,
    "job.subscribed",
  );
}

/** Waits for a job's terminal on the owner and returns every seq-bearing envelope it got for the job. */
async function ownerStream(owner: WsClient, jobId: string): Promise<Env[]> {
  if (!owner.seen.some((e) => e.job_id === jobId && /^job\.(result|error)$/.test(e.type))) {
    await owner.untilTerminal(jobId);
  }
  return owner.seen.filter((e) => e.job_id === jobId && e.event_seq !== undefined);
}

/** Waits until every earlier request of the session has been handled. */
async function flush(c: WsClient): Promise<void> {
  const req = c.send("session.list_jobs", {});
  await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
}

Deno.test("subscribe with history to a running job: job.subscribed first, every event exactly once, re-stamped gap-free in the subscriber's seq space", async () => {
  await using server = await startServer({ agentsDir: STREAM_AGENTS });
  await using owner = await connect(server.url);
  await using sub = await connect(server.url);
  await warmUp(sub);
  const before = maxSeq(sub);
  ok(before > 0);

  const jobId = await burst(owner, [10, 10]);
  await readUntilTick(owner, jobId, 10);
  // The job is now in its pause: alive, emitting nothing.
  const s = await subscribe(sub, { job_id: jobId, from_event_seq: 0, history: true });
  equal(s.type, "job.subscribed", JSON.stringify(s.payload));
  equal(s.event_seq, undefined);
  equal(s.session_id, sub.sessionId);
  equal(s.payload.job_id, jobId);
  equal(s.payload.current_status, "running");
  equal(s.payload.agent, "burst@1.0.0");
  deepEqual(s.payload.lease, {});
  match(s.payload.trace_id, /^[0-9a-f]{32}$/);
  equal(s.payload.trace_id, owner.seen.find((e) => e.job_id === jobId)!.trace_id);
  equal(s.payload.subscribed_from, before);
  equal(s.payload.replayed, true);
  // Nothing of the job reached the subscriber before job.subscribed.
  ok(!sub.seen.slice(0, sub.seen.indexOf(s)).some((e) => e.job_id === jobId));

  const mine = await sub.untilTerminal(jobId);
  const theirs = await ownerStream(owner, jobId);
  assertGapFree(mine, before + 1);
  ok(mine.every((e) => e.session_id === sub.sessionId));
  deepEqual(ticks(mine), range(1, 20));
  // Exactly the owner's envelopes, in the owner's order.
  deepEqual(mine.map(content), theirs.map(content));
  equal(mine.at(-1)!.type, "job.result");
  deepEqual(mine.at(-1)!.payload.result, { ticks: 20 });
});

// A subscriber that registers while a fast job is emitting must see every
// event exactly once and in order (history below the registration mark,
// then the queue); several subscribers race one job to make it likely.
Deno.test({
  name:
    "subscribing to a fast-running job with history delivers every event exactly once and in order",
  async fn() {
    await using server = await startServer();
    await using owner = await connect(server.url);
    const subs = await Promise.all(range(1, 5).map(() => connect(server.url)));
    try {
      const jobId = await ticker(owner, 300, 1);
      await readUntilTick(owner, jobId, 20);
      for (const sub of subs) sub.send("job.subscribe", { job_id: jobId, history: true });
      const theirs = await ownerStream(owner, jobId);
      for (const sub of subs) {
        equal((await sub.next((e) => e.job_id === jobId)).type, "job.subscribed");
        const mine = await sub.untilTerminal(jobId);
        assertGapFree(mine, 1);
        deepEqual(ticks(mine), range(1, 300));
        deepEqual(mine.map(content), theirs.map(content));
      }
    } finally {
      for (const sub of subs) await sub.close();
    }
  },
});

Deno.test("from_event_seq counts in the owner's seq space and skips earlier events", async () => {
  await using server = await startServer({ agentsDir: STREAM_AGENTS });
  await using owner = await connect(server.url);
  await using sub = await connect(server.url);
  // Shift the owner's seq space so it differs from positions in the job's history.
  await warmUp(owner);
  await warmUp(owner);
  const jobId = await burst(owner, [10, 10]);
  const seen = await readUntilTick(owner, jobId, 10);
  const cut = seen.find((e) => e.payload.kind === "progress" && e.payload.body.current === 4)!;
  ok(cut.event_seq! > 8);
  const s = await subscribe(sub, { job_id: jobId, from_event_seq: cut.event_seq, history: true });
  equal(s.type, "job.subscribed", JSON.stringify(s.payload));
  equal(s.payload.subscribed_from, 0);
  const mine = await sub.untilTerminal(jobId);
  const theirs = (await ownerStream(owner, jobId)).filter((e) => e.event_seq! > cut.event_seq!);
  assertGapFree(mine, 1);
  deepEqual(ticks(mine), range(5, 20));
  deepEqual(mine.map(content), theirs.map(content));
});

Deno.test("history:false delivers only live events, each once, through the terminal", async () => {
  await using server = await startServer({ agentsDir: STREAM_AGENTS });
  await using owner = await connect(server.url);
  await using sub = await connect(server.url);
  const jobId = await burst(owner, [5, 10]);
  await readUntilTick(owner, jobId, 5);
  const s = await subscribe(sub, { job_id: jobId, history: false });
  equal(s.type, "job.subscribed", JSON.stringify(s.payload));
  equal(s.payload.replayed, false);
  equal(s.payload.subscribed_from, 0);
  const mine = await sub.untilTerminal(jobId);
  assertGapFree(mine, 1);
  deepEqual(ticks(mine), range(6, 15));
  ok(!mine.some((e) => e.payload.kind === "status"));
  // What arrived is exactly the tail of the owner's stream.
  const theirs = await ownerStream(owner, jobId);
  deepEqual(mine.map(content), theirs.slice(theirs.length - mine.length).map(content));
  deepEqual(mine.at(-1)!.payload.result, { ticks: 15 });
});

Deno.test("live fan-out: the owner and every subscriber get the same bytes but for id, session_id and event_seq", async () => {
  await using server = await startServer({ agentsDir: STREAM_AGENTS });
  await using owner = await connect(server.url);
  await using sub1 = await connect(server.url);
  await using sub2 = await connect(server.url);
  const frames = new Map<WsClient, string[]>();
  for (const c of [owner, sub1, sub2]) {
    const texts: string[] = [];
    frames.set(c, texts);
    c.ws.addEventListener("message", (m) => texts.push(String(m.data)));
  }
  await warmUp(sub2); // so the sessions' seqs differ
  const jobId = await burst(owner, [3, 20]);
  await readUntilTick(owner, jobId, 3);
  for (const c of [sub1, sub2]) {
    equal((await subscribe(c, { job_id: jobId, history: false })).type, "job.subscribed");
  }
  await owner.untilTerminal(jobId);
  for (const c of [sub1, sub2]) await c.untilTerminal(jobId);
  // Each frame of the job with its per-session fields blanked, keyed by what it says.
  const stamped = (c: WsClient) => {
    const out = new Map<string, { text: string; env: Env }>();
    for (const text of frames.get(c)!) {
      const env = JSON.parse(text) as Env;
      if (env.job_id !== jobId || env.event_seq === undefined) continue;
      equal(env.session_id, c.sessionId);
      const blank = text.replace(`"id":"${env.id}"`, '"id":""')
        .replace(`"session_id":"${env.session_id}"`, '"session_id":""')
        .replace(`"event_seq":${env.event_seq}`, '"event_seq":0');
      out.set(JSON.stringify(content(env)), { text: blank, env });
    }
    return out;
  };
  const theirs = stamped(owner);
  for (const c of [sub1, sub2]) {
    const mine = stamped(c);
    ok(mine.size >= 21, `${mine.size} live envelopes reached a subscriber`);
    for (const [what, { text, env }] of mine) {
      equal(text, theirs.get(what)?.text, `seq ${env.event_seq} differs from the owner's`);
      ok(env.id !== undefined && !frames.get(owner)!.some((t) => t.includes(`"id":"${env.id}"`)));
    }
  }
});

Deno.test("subscribing to a finished job replays its history and its terminal", async () => {
  await using server = await startServer();
  await using owner = await connect(server.url);
  await using sub = await connect(server.url);
  const jobId = await ticker(owner, 5, 0);
  const theirs = await owner.untilTerminal(jobId);
  const s = await subscribe(sub, { job_id: jobId, from_event_seq: 0, history: true });
  equal(s.type, "job.subscribed", JSON.stringify(s.payload));
  equal(s.payload.current_status, "success");
  equal(s.payload.agent, "ticker@1.0.0");
  const mine = await sub.untilTerminal(jobId);
  assertGapFree(mine, 1);
  deepEqual(mine.map(content), theirs.map(content));
  deepEqual(mine.at(-1)!.payload.result, { ticks: 5 });
});

Deno.test("a subscribe to another principal's job is PERMISSION_DENIED, to an unknown job JOB_NOT_FOUND; the session goes on", async () => {
  await using server = await startServer();
  await using alice = await connect(server.url, "alice-token");
  await using bob = await connect(server.url, "bob-token");
  const jobId = await ticker(alice, 3, 0);
  await alice.untilTerminal(jobId);

  const denied = await subscribe(bob, { job_id: jobId, history: true });
  equal(denied.type, "session.error");
  equal(denied.payload.code, "PERMISSION_DENIED");
  equal(denied.payload.retryable, false);
  equal(denied.payload.details?.job_id, jobId);
  equal(denied.session_id, bob.sessionId);

  const unknown = "job_01J0000000000000000000000X";
  const missing = await subscribe(bob, { job_id: unknown, history: true });
  equal(missing.type, "session.error");
  equal(missing.payload.code, "JOB_NOT_FOUND");
  equal(missing.payload.details?.job_id, unknown);

  // Nothing of alice's job leaked, and bob's session still works.
  await flush(bob);
  ok(!bob.seen.some((e) => e.job_id === jobId));
  equal(bob.closeCode, undefined);
});

Deno.test("a subscriber cannot cancel: job.error PERMISSION_DENIED to it alone, and the job runs on", async () => {
  await using server = await startServer({ agentsDir: STREAM_AGENTS });
  await using owner = await connect(server.url);
  await using sub = await connect(server.url);
  const jobId = await burst(owner, [2, 5], 600);
  await readUntilTick(owner, jobId, 2);
  equal((await subscribe(sub, { job_id: jobId, history: true })).type, "job.subscribed");
  sub.send("job.cancel", {}, { job_id: jobId });
  const refused = await sub.next((e) => e.type === "job.error" && e.job_id === jobId);
  equal(refused.payload.code, "PERMISSION_DENIED");
  equal(refused.payload.final_status, "error");
  equal(refused.payload.retryable, false);
  equal(refused.payload.details?.refused, "job.cancel");
  const mine = await sub.untilTerminal(jobId);
  equal(mine.at(-1)!.type, "job.result");
  deepEqual(ticks(sub.seen.filter((e) => e.job_id === jobId)), range(1, 7));
  // The refusal took a seq in the subscriber's space: its stream stays gap-free.
  assertGapFree(sub.seen, 1);
  const theirs = await ownerStream(owner, jobId);
  equal(theirs.at(-1)!.type, "job.result");
  ok(
    !owner.seen.some((e) => e.type === "job.cancelled" || e.payload?.code === "PERMISSION_DENIED"),
  );
});

Deno.test("job.unsubscribe stops delivery", async () => {
  await using server = await startServer({ agentsDir: STREAM_AGENTS });
  await using owner = await connect(server.url);
  await using sub = await connect(server.url);
  const jobId = await burst(owner, [3, 4, 6], 700);
  await readUntilTick(owner, jobId, 3);
  equal((await subscribe(sub, { job_id: jobId, history: false })).type, "job.subscribed");
  // The second burst arrives live...
  await readUntilTick(sub, jobId, 7);
  // ...then, in the second pause, unsubscribe.
  sub.send("job.unsubscribe", { job_id: jobId });
  await flush(sub);
  const theirs = await ownerStream(owner, jobId);
  equal(theirs.at(-1)!.type, "job.result");
  await new Promise((r) => setTimeout(r, 200));
  deepEqual(ticks(sub.seen.filter((e) => e.job_id === jobId)), range(4, 7));
  ok(!sub.seen.some((e) => e.job_id === jobId && e.type === "job.result"));
  equal(sub.closeCode, undefined);
});

Deno.test("without the subscribe feature, job.subscribe is INVALID_REQUEST", async () => {
  await using server = await startServer();
  await using owner = await connect(server.url);
  await using sub = await connect(
    server.url,
    "alice-token",
    ALL_FEATURES.filter((f) => f !== "subscribe"),
  );
  const jobId = await ticker(owner, 3, 0);
  await owner.untilTerminal(jobId);
  const e = await subscribe(sub, { job_id: jobId, history: true });
  equal(e.type, "session.error");
  equal(e.payload.code, "INVALID_REQUEST");
  match(e.payload.message, /subscribe/);
  await flush(sub);
  ok(!sub.seen.some((x) => x.job_id === jobId));
});

Deno.test("every subscribe decision is in the audit log", async () => {
  await using server = await startServer();
  const alice = await connect(server.url, "alice-token");
  const alice2 = await connect(server.url, "alice-token");
  const bob = await connect(server.url, "bob-token");
  const jobId = await ticker(alice, 2, 0);
  await alice.untilTerminal(jobId);
  equal((await subscribe(alice2, { job_id: jobId, history: true })).type, "job.subscribed");
  equal((await subscribe(bob, { job_id: jobId })).payload.code, "PERMISSION_DENIED");
  await alice.close();
  await alice2.close();
  await bob.close();
  await server.close();

  const kv = await Deno.openKv(server.kvPath);
  try {
    const entries: Array<Record<string, unknown>> = [];
    for await (const e of kv.list<Record<string, unknown>>({ prefix: ["v1", "audit"] })) {
      entries.push(e.value);
    }
    const granted = entries.filter((e) => e.decision === "granted");
    const denied = entries.filter((e) => e.decision === "PERMISSION_DENIED");
    equal(granted.length, 1, JSON.stringify(entries));
    equal(denied.length, 1, JSON.stringify(entries));
    equal(granted[0].job_id, jobId);
    equal(granted[0].subscriber_principal, "alice");
    equal(granted[0].subscriber_session, alice2.sessionId);
    equal(granted[0].owner_principal, "alice");
    equal(denied[0].job_id, jobId);
    equal(denied[0].subscriber_principal, "bob");
    equal(denied[0].subscriber_session, bob.sessionId);
    equal(denied[0].owner_principal, "alice");
    ok(typeof granted[0].at === "number");
  } finally {
    kv.close();
  }
});

Deno.test("an idempotent resubmit from another session returns the same job and streams its events and terminal there", async () => {
  await using server = await startServer({ agentsDir: STREAM_AGENTS });
  await using first = await connect(server.url);
  await using second = await connect(server.url);
  const payload = {
    agent: "burst",
    input: { bursts: [3, 5], pause_ms: 800 },
    idempotency_key: "k-1",
  };
  const acc1 = await first.submit(payload);
  equal(acc1.type, "job.accepted");
  const jobId = acc1.job_id!;
  await readUntilTick(first, jobId, 3);

  const acc2 = await second.submit(payload);
  equal(acc2.type, "job.accepted", JSON.stringify(acc2.payload));
  equal(acc2.job_id, jobId);
  equal(acc2.payload.job_id, jobId);
  equal(acc2.payload.trace_id, acc1.payload.trace_id);
  const mine = (await second.untilTerminal(jobId)).filter((e) => e.event_seq !== undefined);
  const theirs = await ownerStream(first, jobId);
  assertGapFree(mine, 1);
  deepEqual(ticks(mine), range(1, 8));
  deepEqual(mine.map(content), theirs.map(content));
  equal(mine.at(-1)!.type, "job.result");
  // Cancel authority stayed with the submitting session.
  second.send("job.cancel", {}, { job_id: jobId });
  const refused = await second.next((e) => e.type === "job.error" && e.job_id === jobId);
  equal(refused.payload.code, "PERMISSION_DENIED");
});

// The same guarantee on the idempotent replay path, which subscribes the
// resubmitting session with history from 0.
Deno.test({
  name:
    "an idempotent resubmit of a fast-running job streams every event exactly once and in order",
  async fn() {
    await using server = await startServer();
    await using first = await connect(server.url);
    const others = await Promise.all(range(1, 4).map(() => connect(server.url)));
    try {
      const payload = {
        agent: "ticker",
        input: { count: 300, interval_ms: 1 },
        idempotency_key: "k",
      };
      const acc = await first.submit(payload);
      const jobId = acc.job_id!;
      await readUntilTick(first, jobId, 30);
      for (const acc2 of await Promise.all(others.map((c) => c.submit(payload)))) {
        equal(acc2.job_id, jobId);
      }
      const theirs = await ownerStream(first, jobId);
      for (const c of others) {
        const mine = (await c.untilTerminal(jobId)).filter((e) => e.event_seq !== undefined);
        assertGapFree(mine, 1);
        deepEqual(ticks(mine), range(1, 300));
        deepEqual(mine.map(content), theirs.map(content));
      }
    } finally {
      for (const c of others) await c.close();
    }
  },
});

Deno.test("a subscriber that drops and resumes gets the rest of the subscribed job from its own log", async () => {
  await using server = await startServer({ agentsDir: STREAM_AGENTS });
  await using owner = await connect(server.url);
  const sub = new WsClient(server.url);
  const w1 = await sub.hello("alice-token");
  const jobId = await burst(owner, [3, 4, 5], 600);
  await readUntilTick(owner, jobId, 3);
  equal((await subscribe(sub, { job_id: jobId, history: true })).type, "job.subscribed");
  const before = await readUntilTick(sub, jobId, 7);
  const last = before.at(-1)!.event_seq!;
  await sub.close();
  // The job finishes while the subscriber is away.
  const theirs = await ownerStream(owner, jobId);

  await using again = new WsClient(server.url);
  const w2 = await again.hello("alice-token", ALL_FEATURES, {
    session_id: sub.sessionId,
    resume_token: w1.payload.resume_token,
    last_event_seq: last,
  });
  equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
  const rest = await again.untilTerminal(jobId);
  assertGapFree([...before, ...rest], 1);
  deepEqual(ticks([...before, ...rest]), range(1, 12));
  deepEqual([...before, ...rest].map(content), theirs.map(content));
});
