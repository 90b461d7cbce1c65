import { deepEqual, equal, match, ok } from "assert";
import { ROOT, startServer } from "../../testing/server.ts";
import { connect, type Env, resume, traceId } from "../../testing/ws_client.ts";

const TRACE = /^[0-9a-f]{32}$/;

Deno.test("a bare echo runs the default version 2.0.0 and returns {echo, version}", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const acc = await c.submit({ agent: "echo", input: { hi: [1, 2] } });
  equal(acc.type, "job.accepted");
  equal(acc.payload.agent, "echo@2.0.0");
  const end = (await c.untilTerminal(acc.job_id!)).at(-1)!;
  equal(end.type, "job.result");
  equal(end.payload.final_status, "success");
  deepEqual(end.payload.result, { echo: { hi: [1, 2] }, version: "2.0.0" });
});

Deno.test("echo@1.0.0 runs the pinned version", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const acc = await c.submit({ agent: "echo@1.0.0", input: "old" });
  equal(acc.type, "job.accepted");
  equal(acc.payload.agent, "echo@1.0.0");
  const end = (await c.untilTerminal(acc.job_id!)).at(-1)!;
  deepEqual(end.payload.result, { echo: "old", version: "1.0.0" });
});

Deno.test("an unknown version is AGENT_VERSION_NOT_AVAILABLE with the available versions in details", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const e = await c.submit({ agent: "echo@9.9.9", input: null });
  equal(e.type, "job.error");
  match(e.job_id!, /^job_/);
  equal(typeof e.event_seq, "number");
  equal(e.payload.final_status, "error");
  equal(e.payload.code, "AGENT_VERSION_NOT_AVAILABLE");
  equal(e.payload.retryable, false);
  ok(e.payload.message.length > 0);
  deepEqual(e.payload.details.available_versions, ["1.0.0", "2.0.0"]);
});

Deno.test("an unknown agent is AGENT_NOT_AVAILABLE", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const e = await c.submit({ agent: "no-such-agent", input: null });
  equal(e.type, "job.error");
  equal(e.payload.final_status, "error");
  equal(e.payload.code, "AGENT_NOT_AVAILABLE");
  equal(e.payload.retryable, false);
});

Deno.test("an agent field that breaks the name[@version] grammar is INVALID_REQUEST naming payload.agent", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  for (const agent of ["Echo", "echo@", "@1.0.0", "echo@1 0", "-echo", "echo@1.0.0@2"]) {
    const e = await c.submit({ agent, input: null });
    equal(e.type, "job.error", agent);
    equal(e.payload.code, "INVALID_REQUEST", agent);
    match(e.payload.message, /payload\.agent/, agent);
  }
});

Deno.test("job.accepted comes before any event of the job and the first event is status running", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const acc = await c.submit({ agent: "echo", input: 1 });
  await c.untilTerminal(acc.job_id!);
  const mine = c.seen.filter((e) => e.job_id === acc.job_id);
  equal(mine[0].type, "job.accepted");
  equal(mine[0].event_seq, undefined);
  equal(mine[1].type, "job.event");
  equal(mine[1].payload.kind, "status");
  deepEqual(mine[1].payload.body, { phase: "running" });
  match(mine[1].payload.ts, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
  equal(mine.at(-1)!.type, "job.result");
  equal(mine.filter((e) => e.type === "job.result" || e.type === "job.error").length, 1);
});

Deno.test("a job that says nothing is still announced running while it runs", async () => {
  // `running` waits briefly to share a commit with the job's next envelope;
  // a job that emits nothing must not keep it back until its end.
  await using server = await startServer({ agentsDir: `${ROOT}/tests/fixtures/agents` });
  await using c = await connect(server.url);
  const acc = await c.submit({ agent: "quiet", input: { ms: 600_000 } });
  equal(acc.type, "job.accepted");
  const running = await c.next((e) => e.job_id === acc.job_id, 30_000, "running");
  equal(running.payload.kind, "status");
  deepEqual(running.payload.body, { phase: "running" });
  // Only now is it cancelled: had `running` waited for the terminal, this is never reached.
  c.send("job.cancel", {}, { job_id: acc.job_id });
  const end = (await c.untilTerminal(acc.job_id!)).at(-1)!;
  equal(end.payload.final_status, "cancelled");
});

Deno.test("a quiet job is announced running though short jobs beside it announce and end first", async () => {
  // Jobs waiting to announce `running` share one timer, cleared once none waits: a short job
  // that stages its `running` with its result, while the quiet one waits, must not take the
  // timer from it.
  await using server = await startServer({ agentsDir: `${ROOT}/tests/fixtures/agents` });
  await using c = await connect(server.url);
  for (let round = 0; round < 3; round++) {
    const [short, quiet] = await Promise.all([
      c.submit({ agent: "quiet", input: { ms: 0 } }),
      c.submit({ agent: "quiet", input: { ms: 600_000 } }),
    ]);
    equal((await c.untilTerminal(short.job_id!)).at(-1)!.type, "job.result");
    const running = await c.next((e) => e.job_id === quiet.job_id, 30_000, "running");
    deepEqual(running.payload.body, { phase: "running" });
    c.send("job.cancel", {}, { job_id: quiet.job_id });
    equal((await c.untilTerminal(quiet.job_id!)).at(-1)!.payload.final_status, "cancelled");
  }
});

Deno.test("running is the first seq-bearing envelope of every job, seqs stay gap-free, and a resume replays what was sent live", async () => {
  // The burst would be refused in part on a loaded machine (a fresh queue that has not emptied
  // for a quarter of the default 1 s budget refuses submits): this test is about seqs.
  await using server = await startServer({ sandboxQueueMs: 60_000 });
  const c = await connect(server.url);
  const jobs = await Promise.all(
    Array.from({ length: 15 }, (_, i) =>
      c.submit(
        i % 3 === 0
          ? { agent: "ticker", input: { count: 5, interval_ms: 0 } }
          : i % 3 === 1
          ? { agent: "echo", input: i }
          : { agent: "failer", input: { message: `no ${i}` } },
      )),
  );
  for (const acc of jobs) equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  await Promise.all(jobs.map((acc) => c.untilTerminal(acc.job_id!)));
  const live = c.seen.filter((e) => e.event_seq !== undefined);
  deepEqual(live.map((e) => e.event_seq), Array.from({ length: live.length }, (_, i) => i + 1));
  for (const acc of jobs) {
    const first = live.find((e) => e.job_id === acc.job_id)!;
    equal(first.type, "job.event", acc.job_id);
    deepEqual([first.payload.kind, first.payload.body], ["status", { phase: "running" }]);
    equal(live.filter((e) => e.job_id === acc.job_id && e.payload.kind === "status").length, 1);
  }
  const w1 = c.seen.find((e) => e.type === "session.welcome")!;
  await c.close();
  const again = await resume(server.url, {
    sessionId: c.sessionId,
    resumeToken: w1.payload.resume_token,
  });
  try {
    const last = live.at(-1)!.event_seq!;
    await again.next((e) => e.event_seq === last, 30_000, "replay");
    const replayed = again.seen.filter((e) => e.event_seq !== undefined);
    deepEqual(
      replayed.map((e) => [e.event_seq, e.type, e.job_id, e.payload]),
      live.map((e) => [e.event_seq, e.type, e.job_id, e.payload]),
    );
  } finally {
    await again.close();
  }
});

Deno.test("ticker count 20 emits progress 1..20 in order with total 20 in ticks, then {ticks: 20}", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const acc = await c.submit({ agent: "ticker", input: { count: 20 } });
  const all = await c.untilTerminal(acc.job_id!);
  const progress = all.filter((e) => e.type === "job.event" && e.payload.kind === "progress");
  deepEqual(
    progress.map((e) => e.payload.body),
    Array.from({ length: 20 }, (_, i) => ({ current: i + 1, total: 20, units: "ticks" })),
  );
  const end = all.at(-1)!;
  equal(end.type, "job.result");
  deepEqual(end.payload.result, { ticks: 20 });
});

Deno.test("event_seq is gap-free from 1 across two concurrent jobs of one session", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const a = await c.submit({ agent: "ticker", input: { count: 15, interval_ms: 2 } });
  const b = await c.submit({ agent: "ticker", input: { count: 15, interval_ms: 3 } });
  await Promise.all([c.untilTerminal(a.job_id!), c.untilTerminal(b.job_id!)]);
  const seqd = c.seen.filter((e) => e.event_seq !== undefined);
  ok(seqd.some((e) => e.job_id === a.job_id) && seqd.some((e) => e.job_id === b.job_id));
  // 2 × (status running + 15 progress + result)
  equal(seqd.length, 34);
  deepEqual(seqd.map((e) => e.event_seq), Array.from({ length: 34 }, (_, i) => i + 1));
  const types = new Set(seqd.map((e) => e.type));
  deepEqual([...types].sort(), ["job.event", "job.result"]);
});

Deno.test("a session that did not negotiate progress gets no progress events and still a gap-free event_seq", async () => {
  await using server = await startServer();
  await using c = await connect(server.url, "alice-token", ["list_jobs"]);
  const acc = await c.submit({ agent: "ticker", input: { count: 5 } });
  const all = await c.untilTerminal(acc.job_id!);
  equal(all.filter((e) => e.payload?.kind === "progress").length, 0);
  deepEqual(all.at(-1)!.payload.result, { ticks: 5 });
  deepEqual(all.map((e) => e.event_seq), all.map((_, i) => i + 1));
});

Deno.test("an agent that throws ends in error / INTERNAL_ERROR, retryable, with its message", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const acc = await c.submit({ agent: "failer", input: { message: "boom-7f3a" } });
  equal(acc.type, "job.accepted");
  const end = (await c.untilTerminal(acc.job_id!)).at(-1)!;
  equal(end.type, "job.error");
  equal(end.payload.final_status, "error");
  equal(end.payload.code, "INTERNAL_ERROR");
  equal(end.payload.retryable, true);
  match(end.payload.message, /boom-7f3a/);
});

Deno.test("a job over max_runtime_sec ends timed_out / TIMEOUT", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const acc = await c.submit({ agent: "sleeper", input: { ms: 30_000 }, max_runtime_sec: 1 });
  equal(acc.type, "job.accepted");
  const end = (await c.untilTerminal(acc.job_id!, 10_000)).at(-1)!;
  equal(end.type, "job.error");
  equal(end.payload.final_status, "timed_out");
  equal(end.payload.code, "TIMEOUT");
  equal(end.payload.retryable, false);
});

Deno.test("the submit's trace_id rides on job.accepted and on every envelope of the job", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const trace = traceId();
  const acc = await c.submit({ agent: "ticker", input: { count: 3 } }, { trace_id: trace });
  equal(acc.trace_id, trace);
  equal(acc.payload.trace_id, trace);
  const all = await c.untilTerminal(acc.job_id!);
  ok(all.length >= 5);
  for (const e of all) equal(e.trace_id, trace, e.type);
});

Deno.test("a submit without trace_id gets a minted 32-hex trace_id used on every envelope", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  c.send("job.submit", { agent: "echo", input: "no trace" });
  const acc = await c.next((e) => e.type === "job.accepted");
  match(acc.trace_id!, TRACE);
  equal(acc.payload.trace_id, acc.trace_id);
  ok(!/^0+$/.test(acc.trace_id!));
  const all: Env[] = await c.untilTerminal(acc.job_id!);
  for (const e of all) equal(e.trace_id, acc.trace_id, e.type);
});
