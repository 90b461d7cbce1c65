/** The client against the real runtime. */
import { deepEqual, equal, match, notEqual, ok, rejects } from "assert";
import {
  ArcpClient,
  ArcpClientError,
  type JobEventEnvelope,
  JobFailedError,
  SubmitRejectedError,
} from "../../src/client/mod.ts";
import { startServer } from "../../testing/server.ts";

function connect(url: string, token = "alice-token"): Promise<ArcpClient> {
  return ArcpClient.connect(url, { token });
}

async function drain(events: AsyncIterable<JobEventEnvelope>): Promise<JobEventEnvelope[]> {
  const out: JobEventEnvelope[] = [];
  for await (const e of events) out.push(e);
  return out;
}

/** Waits until `check` holds, polling; fails after a generous deadline. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("connect is welcomed with a session, a resume token, the negotiated features and the agents", async () => {
  await using server = await startServer();
  await using client = await connect(server.url);
  match(client.sessionId, /^sess_/);
  ok(client.resumeToken.length >= 22);
  ok(client.resumeWindowSec > 0);
  ok(client.features.includes("list_jobs"));
  ok(client.features.includes("progress"));
  ok(client.features.includes("result_chunk"), "asked for by default, so negotiated");
  deepEqual(client.agents.find((a) => a.name === "echo"), {
    name: "echo",
    versions: ["1.0.0", "2.0.0"],
    default: "2.0.0",
  });
  equal(client.resumed, false);
  equal(client.lastEventSeq, 0);
});

Deno.test("a bad token rejects connect with UNAUTHENTICATED", async () => {
  await using server = await startServer();
  await rejects(connect(server.url, "wrong"), (e: unknown) => {
    ok(e instanceof ArcpClientError);
    equal(e.code, "UNAUTHENTICATED");
    return true;
  });
});

Deno.test("a resume with a token the runtime does not know rejects with RESUME_WINDOW_EXPIRED", async () => {
  await using server = await startServer();
  const first = await connect(server.url);
  const sessionId = first.sessionId;
  await first.close();
  await rejects(
    ArcpClient.connect(server.url, {
      token: "alice-token",
      resume: { sessionId, resumeToken: "not-the-token", lastEventSeq: 0 },
    }),
    { code: "RESUME_WINDOW_EXPIRED" },
  );
});

Deno.test("submit echo: accepted with the trace id, then the result", async () => {
  await using server = await startServer();
  await using client = await connect(server.url);
  const job = client.submit({ agent: "echo", input: { a: 1 } });
  match(job.traceId, /^[0-9a-f]{32}$/);
  equal(job.jobId, undefined);
  const accepted = await job.accepted;
  match(accepted.job_id, /^job_/);
  equal(job.jobId, accepted.job_id);
  equal(accepted.agent, "echo@2.0.0");
  equal(accepted.trace_id, job.traceId);
  deepEqual(await job.result, {
    final_status: "success",
    result: { echo: { a: 1 }, version: "2.0.0" },
  });
});

Deno.test("ticker events arrive in order: running, then progress 1..N, gap-free event_seq", async () => {
  await using server = await startServer();
  await using client = await connect(server.url);
  const job = client.submit({ agent: "ticker", input: { count: 5 } });
  const events = await drain(job.events());
  deepEqual((await job.result).result, { ticks: 5 });
  equal(events[0].payload.kind, "status");
  deepEqual(events[0].payload.body, { phase: "running" });
  const ticks = events.filter((e) => e.payload.kind === "progress").map((e) => e.payload.body);
  deepEqual(ticks.map((b) => b.current), [1, 2, 3, 4, 5]);
  ok(ticks.every((b) => b.total === 5 && b.units === "ticks"));
  const seqs = events.map((e) => e.event_seq);
  deepEqual(seqs, seqs.map((_, i) => seqs[0] + i));
  ok(events.every((e) => e.job_id === job.jobId && e.trace_id === job.traceId));
  equal(client.lastEventSeq, seqs.at(-1)! + 1, "the job.result took the next seq");
});

Deno.test("submit rejections reject accepted (and result) with the runtime's code", async () => {
  await using server = await startServer();
  await using client = await connect(server.url);
  const unknown = client.submit({ agent: "no-such-agent", input: null });
  await rejects(unknown.accepted, (e: unknown) => {
    ok(e instanceof SubmitRejectedError);
    equal(e.code, "AGENT_NOT_AVAILABLE");
    return true;
  });
  await rejects(unknown.result, { code: "AGENT_NOT_AVAILABLE" });
  equal(unknown.jobId, undefined);

  const version = client.submit({ agent: "echo@9.9.9", input: null });
  await rejects(version.accepted, (e: unknown) => {
    ok(e instanceof SubmitRejectedError);
    equal(e.code, "AGENT_VERSION_NOT_AVAILABLE");
    deepEqual(e.details?.available_versions, ["1.0.0", "2.0.0"]);
    return true;
  });

  const bad = client.submit({ agent: "echo", input: null, maxRuntimeSec: -1 });
  await rejects(bad.accepted, { code: "INVALID_REQUEST" });

  const badTrace = client.submit({ agent: "echo", input: null, traceId: "XYZ" });
  await rejects(badTrace.accepted, { code: "INVALID_REQUEST" });

  // The session goes on.
  deepEqual((await client.submit({ agent: "echo", input: 2 }).result).result, {
    echo: 2,
    version: "2.0.0",
  });
});

Deno.test("a failing agent rejects result with JobFailedError INTERNAL_ERROR", async () => {
  await using server = await startServer();
  await using client = await connect(server.url);
  const job = client.submit({ agent: "failer", input: { message: "kaput" } });
  await job.accepted;
  await rejects(job.result, (e: unknown) => {
    ok(e instanceof JobFailedError);
    equal(e.finalStatus, "error");
    equal(e.code, "INTERNAL_ERROR");
    equal(e.retryable, true);
    equal(e.jobId, job.jobId);
    match(e.message, /kaput/);
    return true;
  });
});

Deno.test("max_runtime_sec ends a job with TIMEOUT / timed_out", async () => {
  await using server = await startServer();
  await using client = await connect(server.url);
  const job = client.submit({ agent: "sleeper", input: { ms: 30_000 }, maxRuntimeSec: 1 });
  await rejects(job.result, (e: unknown) => {
    ok(e instanceof JobFailedError);
    equal(e.finalStatus, "timed_out");
    equal(e.code, "TIMEOUT");
    return true;
  });
});

Deno.test("cancel of a sleeper: cancelling, then the job ends CANCELLED; a second cancel finds it ended", async () => {
  await using server = await startServer();
  await using client = await connect(server.url);
  const job = client.submit({ agent: "sleeper", input: { ms: 30_000 } });
  const events = job.events();
  await job.accepted;
  // Cancel once the agent is surely running.
  for await (const e of events) if (e.payload.body.phase === "sleeping") break;
  equal(await job.cancel("test"), "cancelling");
  await rejects(job.result, (e: unknown) => {
    ok(e instanceof JobFailedError);
    equal(e.finalStatus, "cancelled");
    equal(e.code, "CANCELLED");
    equal(e.retryable, false);
    return true;
  });
  equal(await job.cancel(), "ended");
  equal(await client.cancel(job.jobId!), "ended");
});

Deno.test("cancel authority: another session gets PERMISSION_DENIED and the job runs on; unknown jobs are JOB_NOT_FOUND", async () => {
  await using server = await startServer();
  await using owner = await connect(server.url);
  await using other = await connect(server.url);
  const job = owner.submit({ agent: "sleeper", input: { ms: 30_000 } });
  const { job_id } = await job.accepted;
  await rejects(other.cancel(job_id), (e: unknown) => {
    ok(e instanceof ArcpClientError);
    equal(e.code, "PERMISSION_DENIED");
    return true;
  });
  await rejects(other.cancel("job_01NOSUCHJOB0000000000000000"), { code: "JOB_NOT_FOUND" });
  const page = await owner.listJobs({ filter: { status: ["pending", "running"] } });
  deepEqual(page.jobs.map((j) => j.job_id), [job_id]);
  equal(await owner.cancel(job_id), "cancelling");
  await rejects(job.result, { code: "CANCELLED" });
});

Deno.test("cancel of an own job that ended before this connection answers ended", async () => {
  await using server = await startServer();
  const first = await connect(server.url);
  const job = first.submit({ agent: "echo", input: 1 });
  await job.result;
  const resume = {
    sessionId: first.sessionId,
    resumeToken: first.resumeToken,
    lastEventSeq: first.lastEventSeq,
  };
  await first.close();
  await using again = await ArcpClient.connect(server.url, { token: "alice-token", resume });
  equal(again.resumed, true);
  equal(await again.cancel(job.jobId!), "ended");
});

Deno.test("resume: the token rotates, the sequence continues, and a watched job's events pick up where they stopped", async () => {
  await using server = await startServer();
  const first = await connect(server.url);
  const job = first.submit({ agent: "ticker", input: { count: 6, interval_ms: 200 } });
  const events = job.events();
  const ticks: number[] = [];
  const take = (e: JobEventEnvelope) => {
    if (e.payload.kind === "progress") ticks.push(e.payload.body.current as number);
  };
  while (ticks.length < 2) take((await events.next()).value);
  const resume = {
    sessionId: first.sessionId,
    resumeToken: first.resumeToken,
    lastEventSeq: first.lastEventSeq,
  };
  await first.close();
  // What arrived before the close is still read, then the loss is reported.
  await rejects(async () => {
    for await (const e of events) take(e);
  }, { code: "CONNECTION_CLOSED" });
  await rejects(job.result, { code: "CONNECTION_CLOSED" });

  await using again = await ArcpClient.connect(server.url, {
    token: "alice-token",
    resume,
    watch: [job.jobId!],
  });
  equal(again.resumed, true);
  equal(again.sessionId, resume.sessionId);
  notEqual(again.resumeToken, resume.resumeToken);
  const watched = again.watch(job.jobId!);
  for (const e of await drain(watched.events())) take(e);
  deepEqual((await watched.result).result, { ticks: 6 });
  // Nothing lost, nothing twice.
  deepEqual(ticks, [1, 2, 3, 4, 5, 6]);
  ok(again.lastEventSeq > resume.lastEventSeq);
});

Deno.test("listJobs pages with cursors, in creation order, without skips or repeats; filters narrow", async () => {
  await using server = await startServer();
  await using client = await connect(server.url);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const job = client.submit({ agent: i % 2 ? "echo@1.0.0" : "ticker", input: { count: 1 } });
    await job.result;
    ids.push(job.jobId!);
  }
  const pages: string[][] = [];
  let cursor: string | null = null;
  do {
    const page = await client.listJobs({ limit: 2, cursor });
    pages.push(page.jobs.map((j) => j.job_id));
    ok(page.jobs.every((j) => j.status === "success"));
    cursor = page.next_cursor;
  } while (cursor);
  deepEqual(pages.flat(), ids);
  ok(pages.every((p) => p.length <= 2));
  ok(pages.length >= 3);

  const echoes = await client.listJobs({ filter: { agent: "echo" } });
  deepEqual(echoes.jobs.map((j) => j.job_id), [ids[1], ids[3]]);
  equal(echoes.jobs[0].agent, "echo@1.0.0");
  equal(echoes.next_cursor, null);
  equal((await client.listJobs({ filter: { status: ["running"] } })).jobs.length, 0);

  await using bob = await connect(server.url, "bob-token");
  deepEqual((await bob.listJobs()).jobs, []);
});

Deno.test("requests for features that were not negotiated are refused locally", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token", features: [] });
  deepEqual(client.features, []);
  await rejects(client.listJobs(), { code: "INVALID_REQUEST" });
  await rejects(client.subscribe("job_x"), { code: "INVALID_REQUEST" });
  equal(client.ack(), false);
  // Without the progress feature the runtime sends no progress events.
  const job = client.submit({ agent: "ticker", input: { count: 3 } });
  const kinds = (await drain(job.events())).map((e) => e.payload.kind);
  ok(!kinds.includes("progress"));
  deepEqual((await job.result).result, { ticks: 3 });
});

Deno.test("subscribe from another session replays the job's history and its outcome, without cancel authority", async () => {
  await using server = await startServer();
  await using owner = await connect(server.url);
  await using watcher = await connect(server.url);
  const job = owner.submit({ agent: "ticker", input: { count: 3 } });
  await job.result;
  const sub = await watcher.subscribe(job.jobId!, { history: true, fromEventSeq: 0 });
  equal(sub.jobId, job.jobId);
  equal(sub.info.agent, "ticker@1.0.0");
  equal(sub.info.trace_id, job.traceId);
  equal(sub.info.current_status, "success");
  const ticks = (await drain(sub.events()))
    .filter((e) => e.payload.kind === "progress")
    .map((e) => e.payload.body.current);
  deepEqual(ticks, [1, 2, 3]);
  deepEqual((await sub.result).result, { ticks: 3 });
  await rejects(watcher.subscribe("job_01NOSUCHJOB0000000000000000"), { code: "JOB_NOT_FOUND" });

  const live = owner.submit({ agent: "sleeper", input: { ms: 30_000 } });
  const liveSub = await watcher.subscribe((await live.accepted).job_id);
  await rejects(watcher.cancel(live.jobId!), { code: "PERMISSION_DENIED" });
  equal(await live.cancel(), "cancelling");
  await rejects(
    liveSub.result,
    (e: unknown) => e instanceof JobFailedError && e.code === "CANCELLED",
  );
});

Deno.test("idempotent resubmits in one session answer with the same job, even after it ended", async () => {
  await using server = await startServer();
  await using client = await connect(server.url);
  const request = { agent: "echo", input: { n: 1 }, idempotencyKey: "key-1" };
  const a = client.submit(request);
  const b = client.submit(request);
  equal((await a.accepted).job_id, (await b.accepted).job_id);
  notEqual(a.traceId, b.traceId);
  deepEqual(await a.result, await b.result);
  const c = client.submit(request);
  equal((await c.accepted).job_id, a.jobId);
  deepEqual((await c.result).result, { echo: { n: 1 }, version: "2.0.0" });
  await rejects(client.submit({ ...request, input: { n: 2 } }).accepted, {
    code: "DUPLICATE_KEY",
  });
});

Deno.test("ping is answered, ack is sent when negotiated, close settles what is pending", async () => {
  await using server = await startServer();
  const client = await connect(server.url);
  const pong = await client.ping();
  match(pong.ping_nonce, /^p_/);
  match(pong.received_at, /Z$/);
  equal(client.ack(), true);
  const job = client.submit({ agent: "sleeper", input: { ms: 30_000 } });
  await job.accepted;
  await client.close();
  await rejects(job.result, { code: "CONNECTION_CLOSED" });
  await rejects(client.ping(), { code: "CONNECTION_CLOSED" });
  await rejects(client.submit({ agent: "echo", input: 1 }).accepted, {
    code: "CONNECTION_CLOSED",
  });
  // Closing again is harmless.
  await client.close();
  // The job outlives the connection: the session stays resumable.
  await using again = await ArcpClient.connect(server.url, {
    token: "alice-token",
    resume: {
      sessionId: client.sessionId,
      resumeToken: client.resumeToken,
      lastEventSeq: client.lastEventSeq,
    },
  });
  equal(await again.cancel(job.jobId!), "cancelling");
  await eventually("the job is cancelled", async () => {
    const page = await again.listJobs({ filter: { status: ["cancelled"] } });
    return page.jobs.some((j) => j.job_id === job.jobId);
  });
});
