/**
 * Input to running jobs (vendor feature `x-arcp-deno.input`) and their
 * transcripts, over a real WebSocket against a real server: inputs reach the
 * agent in order and are recorded in the job's history with its outputs;
 * sessions that did not negotiate the feature never see any of it; refusals
 * are clear and specific; a full queue refuses retryably and loses nothing;
 * the transcript replays from a cursor after a restart. Also: `ctx.fetch`
 * carries the job's `traceparent`, and a cancel's reason reaches `job.error`.
 */
import { deepEqual, equal, match, notEqual, ok } from "assert";
import { ROOT, startServer, type TestServer } from "../../testing/server.ts";
import { serveLoopback } from "../../testing/loopback.ts";
import { ALL_FEATURES, connect, type Env, type WsClient } from "../../testing/ws_client.ts";

const AGENTS = `${ROOT}/tests/fixtures/input`;
const FEATURE = "x-arcp-deno.input";
const WITH_INPUT = [...ALL_FEATURES, FEATURE];
const INPUT_KIND = "x-vendor.arcp-deno.input";

/** Sends an input and takes its answer (accepted or refused). */
async function send(
  c: WsClient,
  jobId: string,
  content: unknown,
  end = false,
): Promise<Env> {
  const req = c.send("x-arcp-deno.job.input", {
    job_id: jobId,
    ...(content === undefined ? {} : { content }),
    ...(end ? { end: true } : {}),
  });
  return await c.next(
    (e) =>
      (e.type === "x-arcp-deno.job.input_accepted" || e.type === "x-arcp-deno.refused") &&
      e.payload.request_id === req.id,
    10_000,
    "input answer",
  );
}

/** Reads one transcript page. */
async function page(
  c: WsClient,
  jobId: string,
  after?: number,
  limit?: number,
): Promise<Env> {
  const req = c.send("x-arcp-deno.job.transcript", {
    job_id: jobId,
    ...(after === undefined ? {} : { after }),
    ...(limit === undefined ? {} : { limit }),
  });
  return await c.next(
    (e) =>
      (e.type === "x-arcp-deno.job.transcript_page" || e.type === "x-arcp-deno.refused") &&
      e.payload.request_id === req.id,
    10_000,
    "transcript page",
  );
}

interface Item {
  index: number;
  type: string;
  payload: { kind?: string; body?: Record<string, unknown>; final_status?: string };
}

/** Reads a whole transcript, `limit` items a page, until `next_after` is null. */
async function transcript(c: WsClient, jobId: string, limit = 3): Promise<Item[]> {
  const items: Item[] = [];
  let after: number | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const p = await page(c, jobId, after, limit);
    equal(p.type, "x-arcp-deno.job.transcript_page", JSON.stringify(p.payload));
    items.push(...p.payload.items);
    if (p.payload.next_after === null) return items;
    after = p.payload.next_after;
  }
  throw new Error("transcript never ended");
}

/** Submits and waits until the job is running. */
async function submitRunning(
  c: WsClient,
  agent: string,
  input: unknown = {},
  lease?: Record<string, string[]>,
): Promise<string> {
  const acc = await c.submit({ agent, input, ...(lease ? { lease_request: lease } : {}) });
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  await c.next(
    (e) => e.job_id === acc.job_id && e.payload?.body?.phase === "running",
    10_000,
    "running",
  );
  return acc.job_id!;
}

function withServer(
  fn: (server: TestServer) => Promise<void>,
  jobs: Record<string, unknown> = {},
): () => Promise<void> {
  return async () => {
    await using server = await startServer({ agentsDir: AGENTS, jobs });
    await fn(server);
  };
}

Deno.test(
  "input: inputs reach the agent in order, and the transcript holds them among the outputs",
  withServer(async (server) => {
    await using c = await connect(server.url, "alice-token", WITH_INPUT);
    const jobId = await submitRunning(c, "reader");
    const sent = ["one", { two: 2 }, null, [3]];
    for (const [i, content] of sent.entries()) {
      const ack = await send(c, jobId, content);
      equal(ack.type, "x-arcp-deno.job.input_accepted", JSON.stringify(ack.payload));
      deepEqual(ack.payload, {
        request_id: ack.payload.request_id,
        job_id: jobId,
        input_seq: i + 1,
      });
    }
    equal((await send(c, jobId, undefined, true)).type, "x-arcp-deno.job.input_accepted");
    const stream = await c.untilTerminal(jobId);
    const end = stream.at(-1)!;
    equal(end.type, "job.result", JSON.stringify(end.payload));
    deepEqual(end.payload.result.received, sent);
    // The session that negotiated the feature sees its inputs as events too.
    const echoed = stream.filter((e) => e.payload.kind === INPUT_KIND).map((e) => e.payload.body);
    deepEqual(echoed.map((b) => b.input_seq), [1, 2, 3, 4, 5]);

    const items = await transcript(c, jobId);
    deepEqual(items.map((it) => it.index), items.map((_, i) => i));
    const inputs = items.filter((it) => it.payload.kind === INPUT_KIND);
    deepEqual(inputs.map((it) => it.payload.body!.content), [...sent, undefined]);
    equal(inputs.at(-1)!.payload.body!.end, true);
    // Each answer comes after the input it answers; the result is last.
    for (const [i, content] of sent.entries()) {
      const inAt = inputs[i].index;
      const outAt = items.find((it) =>
        it.payload.kind === "log" && it.payload.body!.message === `got ${JSON.stringify(content)}`
      )!.index;
      ok(inAt < outAt, `input ${i} at ${inAt}, its answer at ${outAt}`);
    }
    equal(items.at(-1)!.type, "job.result");
  }),
);

Deno.test(
  "input: a session without the feature gets an unknown type and never sees input events",
  withServer(async (server) => {
    await using owner = await connect(server.url, "alice-token", WITH_INPUT);
    await using plain = await connect(server.url, "alice-token", ALL_FEATURES);
    const jobId = await submitRunning(owner, "reader");
    // Not negotiated: exactly what an unknown type gets.
    plain.send("x-arcp-deno.job.input", { job_id: jobId, content: "hi" });
    const err = await plain.next((e) => e.type === "session.error");
    equal(err.payload.code, "INVALID_REQUEST");
    match(err.payload.message, /unknown message type "x-arcp-deno\.job\.input"/);
    plain.send("x-arcp-deno.job.transcript", { job_id: jobId });
    match((await plain.next((e) => e.type === "session.error")).payload.message, /unknown/);
    // A subscriber without the feature follows the job live, one with it too.
    plain.send("job.subscribe", { job_id: jobId, history: true });
    await plain.next((e) => e.type === "job.subscribed");
    await using rich = await connect(server.url, "alice-token", WITH_INPUT);
    rich.send("job.subscribe", { job_id: jobId, history: true });
    await rich.next((e) => e.type === "job.subscribed");
    equal((await send(owner, jobId, "hello")).type, "x-arcp-deno.job.input_accepted");
    equal((await send(owner, jobId, undefined, true)).type, "x-arcp-deno.job.input_accepted");
    const plainSaw = await plain.untilTerminal(jobId);
    const richSaw = await rich.untilTerminal(jobId);
    equal(plainSaw.at(-1)!.type, "job.result");
    equal(plainSaw.filter((e) => e.payload.kind === INPUT_KIND).length, 0);
    equal(richSaw.filter((e) => e.payload.kind === INPUT_KIND).length, 2);
    // Nor on a later replay of the history.
    await using late = await connect(server.url, "alice-token", ALL_FEATURES);
    late.send("job.subscribe", { job_id: jobId, history: true });
    await late.next((e) => e.type === "job.subscribed");
    const replayed = await late.untilTerminal(jobId);
    ok(replayed.some((e) => e.payload.kind === "log"));
    equal(replayed.filter((e) => e.payload.kind === INPUT_KIND).length, 0);
  }),
);

Deno.test(
  "input: another principal, another session, an unknown job and an ended job are refused",
  withServer(async (server) => {
    await using alice = await connect(server.url, "alice-token", WITH_INPUT);
    await using alice2 = await connect(server.url, "alice-token", WITH_INPUT);
    await using bob = await connect(server.url, "bob-token", WITH_INPUT);
    const jobId = await submitRunning(alice, "reader");

    const byBob = await send(bob, jobId, "hi");
    equal(byBob.type, "x-arcp-deno.refused");
    equal(byBob.payload.code, "PERMISSION_DENIED");
    match(byBob.payload.message, /principal/);
    equal(byBob.payload.retryable, false);
    equal((await page(bob, jobId)).payload.code, "PERMISSION_DENIED");

    const bySibling = await send(alice2, jobId, "hi");
    equal(bySibling.payload.code, "PERMISSION_DENIED");
    match(bySibling.payload.message, /only the session that submitted/);

    const unknown = await send(alice, "job_nope", "hi");
    equal(unknown.payload.code, "JOB_NOT_FOUND");

    const bad = alice.send("x-arcp-deno.job.input", { job_id: jobId });
    const badAnswer = await alice.next((e) => e.payload?.request_id === bad.id);
    equal(badAnswer.type, "x-arcp-deno.refused");
    equal(badAnswer.payload.code, "INVALID_REQUEST");
    match(badAnswer.payload.message, /content/);

    equal((await send(alice, jobId, "last", true)).type, "x-arcp-deno.job.input_accepted");
    const afterEnd = await send(alice, jobId, "more");
    equal(afterEnd.payload.code, "INVALID_REQUEST");
    // The reader ends as soon as it reads the end: by now its input is ended, or the job is.
    match(afterEnd.payload.message, /was ended|has ended \(success\)/);
    equal((await alice.untilTerminal(jobId)).at(-1)!.type, "job.result");
    const finished = await send(alice, jobId, "too late");
    equal(finished.type, "x-arcp-deno.refused");
    equal(finished.payload.code, "INVALID_REQUEST");
    match(finished.payload.message, /has ended \(success\)/);
    deepEqual(finished.payload.details, { job_id: jobId, status: "success" });
    // None of the refusals touched the job's history: one input and its end.
    const inputs = (await transcript(alice, jobId)).filter((it) => it.payload.kind === INPUT_KIND);
    deepEqual(inputs.map((it) => it.payload.body), [{ input_seq: 1, content: "last", end: true }]);
  }),
);

Deno.test(
  "input: an input over the configured size cap is refused",
  withServer(async (server) => {
    await using c = await connect(server.url, "alice-token", WITH_INPUT);
    const jobId = await submitRunning(c, "reader");
    const big = await send(c, jobId, "x".repeat(2000));
    equal(big.type, "x-arcp-deno.refused");
    equal(big.payload.code, "INVALID_REQUEST");
    equal(big.payload.details.cap, "input_bytes");
    equal(big.payload.details.limit, 1024);
    equal((await send(c, jobId, "x".repeat(1000), true)).type, "x-arcp-deno.job.input_accepted");
    const end = (await c.untilTerminal(jobId)).at(-1)!;
    deepEqual(end.payload.result.received, ["x".repeat(1000)]);
  }, { maxInputBytes: 1024 }),
);

Deno.test(
  "input: a full queue refuses retryably, and every accepted input reaches the agent once",
  withServer(async (server) => {
    const release = Promise.withResolvers<void>();
    const gate = serveLoopback(async () => {
      await release.promise;
      return new Response("go");
    });
    try {
      await using c = await connect(server.url, "alice-token", WITH_INPUT);
      const url = `http://127.0.0.1:${gate.port}/gate`;
      const jobId = await submitRunning(c, "reader", { gate: url }, {
        "net.fetch": [`http://127.0.0.1:${gate.port}/**`],
      });
      // The agent is held at its gate: nothing is read, so the queue fills.
      equal((await send(c, jobId, 1)).type, "x-arcp-deno.job.input_accepted");
      equal((await send(c, jobId, 2)).type, "x-arcp-deno.job.input_accepted");
      const full = await send(c, jobId, 3);
      equal(full.type, "x-arcp-deno.refused");
      equal(full.payload.code, "INTERNAL_ERROR");
      equal(full.payload.retryable, true);
      deepEqual(full.payload.details, { job_id: jobId, cap: "input_queue", limit: 2 });
      release.resolve();
      // Retried until the agent has read enough to make room; only queue-full refusals come back.
      const retrying = async (content: unknown, end = false) => {
        for (;;) {
          const answer = await send(c, jobId, content, end);
          if (answer.type !== "x-arcp-deno.refused") return answer;
          equal(answer.payload.details.cap, "input_queue");
        }
      };
      equal((await retrying(3)).payload.input_seq, 3);
      equal((await retrying(undefined, true)).payload.input_seq, 4);
      const end = (await c.untilTerminal(jobId)).at(-1)!;
      deepEqual(end.payload.result.received, [1, 2, 3]);
      const inputs = (await transcript(c, jobId)).filter((it) => it.payload.kind === INPUT_KIND);
      deepEqual(inputs.map((it) => it.payload.body!.content), [1, 2, 3, undefined]);
    } finally {
      release.resolve();
      await gate.close();
    }
  }, { maxQueuedInputs: 2 }),
);

Deno.test(
  "input: a worker shared by concurrent jobs hands each input to its own job",
  withServer(async (server) => {
    await using c = await connect(server.url, "alice-token", WITH_INPUT);
    const a = await submitRunning(c, "shared-reader");
    const b = await submitRunning(c, "shared-reader");
    for (let i = 0; i < 3; i++) {
      equal((await send(c, a, `a${i}`)).type, "x-arcp-deno.job.input_accepted");
      equal((await send(c, b, `b${i}`)).type, "x-arcp-deno.job.input_accepted");
    }
    await send(c, b, undefined, true);
    await send(c, a, undefined, true);
    const endA = (await c.untilTerminal(a)).at(-1)!;
    const endB = (await c.untilTerminal(b)).at(-1)!;
    const worker = endA.payload.result.worker;
    deepEqual(endA.payload.result, { received: ["a0", "a1", "a2"], job_id: a, worker });
    // Both jobs ran in the same worker, each in its own slot.
    deepEqual(endB.payload.result, { received: ["b0", "b1", "b2"], job_id: b, worker });
  }),
);

Deno.test("input: the transcript replays from a cursor after a restart", async () => {
  const first = await startServer({ agentsDir: AGENTS });
  let jobId: string;
  let before: Item[];
  try {
    await using c = await connect(first.url, "alice-token", WITH_INPUT);
    jobId = await submitRunning(c, "reader");
    for (const content of ["a", "b"]) await send(c, jobId, content);
    await send(c, jobId, "c", true);
    equal((await c.untilTerminal(jobId)).at(-1)!.type, "job.result");
    before = await transcript(c, jobId, 2);
  } finally {
    await first.close();
  }
  await using again = await startServer({ agentsDir: AGENTS, kvPath: first.kvPath });
  await using c = await connect(again.url, "alice-token", WITH_INPUT);
  deepEqual(await transcript(c, jobId, 4), before);
  // From a cursor in the middle: exactly the rest.
  const mid = before[3].index;
  const rest = await page(c, jobId, mid, 500);
  deepEqual(rest.payload.items, before.slice(4));
  equal(rest.payload.next_after, null);
  equal(rest.payload.status, "success");
  const inputs = before.filter((it) => it.payload.kind === INPUT_KIND);
  deepEqual(inputs.map((it) => it.payload.body!.content), ["a", "b", "c"]);
});

Deno.test(
  "ctx.fetch carries the job's traceparent to the upstream",
  withServer(async (server) => {
    const seen: Array<string | null> = [];
    const upstream = serveLoopback((req) => {
      seen.push(req.headers.get("traceparent"));
      return new Response("ok");
    });
    try {
      await using c = await connect(server.url, "alice-token", WITH_INPUT);
      const base = `http://127.0.0.1:${upstream.port}`;
      const acc = await c.submit({
        agent: "prober",
        input: { urls: [`${base}/a`, `${base}/b`] },
        lease_request: { "net.fetch": [`${base}/**`] },
      });
      equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
      const end = (await c.untilTerminal(acc.job_id!)).at(-1)!;
      equal(end.type, "job.result", JSON.stringify(end.payload));
      deepEqual(end.payload.result.statuses, [200, 200]);
      equal(seen.length, 2);
      for (const header of seen) {
        match(header ?? "", new RegExp(`^00-${acc.trace_id}-[0-9a-f]{16}-01$`));
        notEqual(header!.split("-")[2], "0000000000000000");
      }
      // Both name the job's one span as their parent.
      equal(seen[0], seen[1]);
    } finally {
      await upstream.close();
    }
  }),
);

Deno.test(
  "cancel: the reason reaches job.error's message, and a pending ctx.input() stops",
  withServer(async (server) => {
    await using c = await connect(server.url, "alice-token", WITH_INPUT);
    const jobId = await submitRunning(c, "reader", { one: true });
    c.send("job.cancel", { reason: "user closed the chat" }, { job_id: jobId });
    const end = (await c.untilTerminal(jobId)).at(-1)!;
    equal(end.type, "job.error");
    equal(end.payload.code, "CANCELLED");
    equal(end.payload.message, "job was cancelled: user closed the chat");
    const plain = await submitRunning(c, "reader", { one: true });
    c.send("job.cancel", {}, { job_id: plain });
    equal((await c.untilTerminal(plain)).at(-1)!.payload.message, "job was cancelled");
  }),
);

Deno.test("input: retention bounds the transcript: the history goes first, then the job", async () => {
  await using server = await startServer({
    agentsDir: AGENTS,
    sweepIntervalMs: 50,
    jobHistoryTtlMs: 2_000,
    jobRetentionMs: 4_000,
  });
  await using c = await connect(server.url, "alice-token", WITH_INPUT);
  const jobId = await submitRunning(c, "reader");
  await send(c, jobId, "kept a while", true);
  equal((await c.untilTerminal(jobId)).at(-1)!.type, "job.result");
  ok((await transcript(c, jobId)).some((it) => it.payload.kind === INPUT_KIND));
  // The sweeper has no event to await: poll what a client sees.
  const until = async (what: string, done: (p: Env) => boolean) => {
    for (let i = 0; i < 400; i++) {
      if (done(await page(c, jobId))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`never happened: ${what}`);
  };
  await until(
    "history swept",
    (p) => p.type !== "x-arcp-deno.refused" && p.payload.items.length === 0,
  );
  const empty = await page(c, jobId);
  deepEqual([empty.payload.status, empty.payload.next_after], ["success", null]);
  await until("job swept", (p) => p.payload.code === "JOB_NOT_FOUND");
});
