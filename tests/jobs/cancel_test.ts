import { deepEqual, equal, ok } from "assert";
import { ROOT, startChildServer, startServer } from "../../testing/server.ts";
import { connect, type Env, type WsClient } from "../../testing/ws_client.ts";

const FIXTURE_AGENTS = `${ROOT}/tests/fixtures/agents`;

/** Submits and takes the job's `running` status and the agent's own first status (so it is running). */
async function submitRunning(c: WsClient, payload: Record<string, unknown>): Promise<Env> {
  const acc = await c.submit(payload);
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  for (const phase of ["running", undefined]) {
    const e = await c.next((e) => e.job_id === acc.job_id, 10_000, "status event");
    equal(e.type, "job.event");
    equal(e.payload.kind, "status");
    if (phase) equal(e.payload.body.phase, phase);
  }
  return acc;
}

/**
 * User + system CPU time of a process and all its descendants, in clock
 * ticks (Linux only). Read through `cat`: the test runs with the runtime's
 * own flags, and Deno grants /proc only with --allow-all.
 */
async function treeCpuTicks(root: number): Promise<number> {
  const out = await new Deno.Command("sh", {
    args: ["-c", "cat /proc/[0-9]*/stat 2>/dev/null"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const procs = new Map<number, { ppid: number; ticks: number }>();
  for (const stat of new TextDecoder().decode(out.stdout).split("\n")) {
    if (!stat) continue;
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    procs.set(Number(stat.slice(0, stat.indexOf(" "))), {
      ppid: Number(f[1]),
      ticks: Number(f[11]) + Number(f[12]),
    });
  }
  let sum = 0;
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    sum += procs.get(pid)?.ticks ?? 0;
    for (const [p, v] of procs) if (v.ppid === pid) todo.push(p);
  }
  return sum;
}

/** Lists this session's jobs; being queued behind earlier requests, it also flushes them. */
async function listJobs(c: WsClient): Promise<Env> {
  const req = c.send("session.list_jobs", {});
  return await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
}

Deno.test("cancelling a running sleeper sends job.cancelled then job.error CANCELLED within 5 s", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const acc = await submitRunning(c, { agent: "sleeper", input: { ms: 30_000 } });
  const jobId = acc.job_id!;
  const t0 = Date.now();
  c.send("job.cancel", { reason: "changed my mind" }, { job_id: jobId });
  const rest = await c.untilTerminal(jobId, 5_000);
  ok(Date.now() - t0 < 5_000);
  const types = rest.map((e) => e.type);
  deepEqual(types, ["job.cancelled", "job.error"]);
  equal(rest[0].payload.reason, "changed my mind");
  equal(rest[0].event_seq, undefined);
  equal(rest[0].trace_id, acc.trace_id);
  equal(rest[1].trace_id, acc.trace_id);
  const end = rest[1];
  equal(end.payload.final_status, "cancelled");
  equal(end.payload.code, "CANCELLED");
  equal(end.payload.retryable, false);
  const listed = (await listJobs(c)).payload.jobs.find((j: { job_id: string }) =>
    j.job_id === jobId
  );
  equal(listed.status, "cancelled");
});

Deno.test("a cancel from another session of the same principal is PERMISSION_DENIED and the job runs on", async () => {
  await using server = await startServer();
  await using owner = await connect(server.url, "alice-token");
  await using other = await connect(server.url, "alice-token");
  const jobId = (await submitRunning(owner, { agent: "sleeper", input: { ms: 800 } })).job_id!;
  other.send("job.cancel", {}, { job_id: jobId });
  const refused = await other.next((e) => e.job_id === jobId);
  equal(refused.type, "job.error");
  // It is the requester's first seq-bearing envelope, so it takes seq 1 there.
  equal(refused.event_seq, 1);
  equal(refused.payload.final_status, "error");
  equal(refused.payload.code, "PERMISSION_DENIED");
  equal(refused.payload.retryable, false);
  deepEqual(refused.payload.details, { refused: "job.cancel" });
  const rest = await owner.untilTerminal(jobId);
  ok(!rest.some((e) => e.type === "job.cancelled"));
  equal(rest.at(-1)!.type, "job.result");
  deepEqual(rest.at(-1)!.payload.result, { slept_ms: 800 });
  // The refusal went to the requester only.
  ok(!owner.seen.some((e) => e.payload?.details?.refused === "job.cancel"));
});

Deno.test("a cancel from another principal is JOB_NOT_FOUND and the job runs on", async () => {
  await using server = await startServer();
  await using alice = await connect(server.url, "alice-token");
  await using bob = await connect(server.url, "bob-token");
  const jobId = (await submitRunning(alice, { agent: "sleeper", input: { ms: 500 } })).job_id!;
  bob.send("job.cancel", {}, { job_id: jobId });
  const refused = await bob.next((e) => e.job_id === jobId);
  equal(refused.type, "job.error");
  equal(refused.payload.code, "JOB_NOT_FOUND");
  equal(refused.payload.retryable, false);
  deepEqual(refused.payload.details, { refused: "job.cancel" });
  const end = (await alice.untilTerminal(jobId)).at(-1)!;
  equal(end.type, "job.result");
});

Deno.test("a repeated cancel still yields exactly one job.cancelled and one terminal", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const jobId = (await submitRunning(c, { agent: "sleeper", input: { ms: 30_000 } })).job_id!;
  c.send("job.cancel", {}, { job_id: jobId });
  c.send("job.cancel", {}, { job_id: jobId });
  const rest = await c.untilTerminal(jobId, 5_000);
  c.send("job.cancel", {}, { job_id: jobId });
  await listJobs(c);
  const mine = c.seen.filter((e) => e.job_id === jobId).map((e) => e.type);
  equal(mine.filter((t) => t === "job.cancelled").length, 1);
  equal(mine.filter((t) => t === "job.error" || t === "job.result").length, 1);
  equal(rest.at(-1)!.payload.code, "CANCELLED");
});

Deno.test("cancelling an unknown job is JOB_NOT_FOUND", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  c.send("job.cancel", {}, { job_id: "job_01JZZZZZZZZZZZZZZZZZZZZZZZ" });
  const e = await c.next((x) => x.job_id === "job_01JZZZZZZZZZZZZZZZZZZZZZZZ");
  equal(e.type, "job.error");
  equal(e.payload.final_status, "error");
  equal(e.payload.code, "JOB_NOT_FOUND");
  deepEqual(e.payload.details, { refused: "job.cancel" });
});

Deno.test("cancelling a job that already ended changes nothing", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const acc = await c.submit({ agent: "echo", input: "done" });
  const end = (await c.untilTerminal(acc.job_id!)).at(-1)!;
  equal(end.type, "job.result");
  c.send("job.cancel", {}, { job_id: acc.job_id });
  const list = await listJobs(c);
  ok(!c.inbox.some((e) => e.job_id === acc.job_id), JSON.stringify(c.inbox));
  const entry = list.payload.jobs.find((j: { job_id: string }) => j.job_id === acc.job_id);
  equal(entry.status, "success");
  equal(entry.last_event_seq, end.event_seq);
});

Deno.test("an agent that never yields is killed after the grace period and ends CANCELLED", async () => {
  // A child process, so whatever the agent's thread does cannot outlive this test.
  const dir = await Deno.makeTempDir({ prefix: "arcp_spin_" });
  const child = await startChildServer(`${dir}/arcp.kv`, ["--agents", FIXTURE_AGENTS]);
  try {
    await using c = await connect(child.url);
    const jobId = (await submitRunning(c, { agent: "spin", input: null })).job_id!;
    const t0 = Date.now();
    c.send("job.cancel", {}, { job_id: jobId });
    const rest = await c.untilTerminal(jobId, 5_000);
    ok(Date.now() - t0 < 5_000);
    deepEqual(rest.map((e) => e.type), ["job.cancelled", "job.error"]);
    equal(rest[1].payload.final_status, "cancelled");
    equal(rest[1].payload.code, "CANCELLED");
    // Later cancels of the ended job change nothing.
    c.send("job.cancel", {}, { job_id: jobId });
    const req = c.send("session.list_jobs", {});
    const list = await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
    equal(list.payload.jobs[0].status, "cancelled");
    ok(!c.inbox.some((e) => e.job_id === jobId));
  } finally {
    await child.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

// Worker.terminate() does not stop a worker stuck in synchronous JS on Deno
// 2.9.x, so the runtime retires the sandbox host process of a force-killed
// job; this checks that the spinning thread really stops burning CPU.
Deno.test({
  name: "a killed never-yielding agent stops using CPU",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "arcp_spin_" });
    const child = await startChildServer(`${dir}/arcp.kv`, ["--agents", FIXTURE_AGENTS]);
    try {
      await using c = await connect(child.url);
      const jobId = (await submitRunning(c, { agent: "spin", input: null })).job_id!;
      c.send("job.cancel", {}, { job_id: jobId });
      equal((await c.untilTerminal(jobId, 5_000)).at(-1)!.payload.code, "CANCELLED");
      await new Promise((r) => setTimeout(r, 200));
      const before = await treeCpuTicks(child.process.pid);
      await new Promise((r) => setTimeout(r, 1_000));
      const used = await treeCpuTicks(child.process.pid) - before;
      ok(used < 50, `the idle runtime used ${used} CPU ticks in 1 s: the agent still spins`);
    } finally {
      await child.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
