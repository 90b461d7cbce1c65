/**
 * Workers shared between jobs (an agent's `reuse` and `concurrency`) only
 * ever serve jobs of one key: the same principal, agent and Deno permission
 * set. A job that does not end with a result retires its worker; a worker
 * that hangs or dies ends exactly the jobs inside it. Without either option,
 * every job gets a fresh worker, even when the pool started it ahead.
 */
import { deepEqual, equal, notEqual, ok } from "assert";
import { ROOT, startServer, type TestServer, TOKENS } from "../../testing/server.ts";
import { connect, type Env, type WsClient } from "../../testing/ws_client.ts";
import { getPriority } from "os";
import { SANDBOX_NICE_OFFSET } from "../../src/sandbox/sandbox_process.ts";
import { setTurnSliceMs } from "../../src/turn_slice.ts";
import { sample, scrapeUntil } from "../operations/_observe.ts";

const AGENTS = `${ROOT}/tests/fixtures/sharing`;

interface Ran {
  worker: string;
  pid: number;
  served: number;
  peak: number;
  text?: string;
}

/** Submits and waits for the terminal. */
async function run(
  c: WsClient,
  agent: string,
  input: Record<string, unknown> = {},
  lease?: Record<string, string[]>,
): Promise<Env> {
  const accepted = await c.submit({ agent, input, ...(lease ? { lease_request: lease } : {}) });
  equal(accepted.type, "job.accepted", JSON.stringify(accepted.payload));
  return (await c.untilTerminal(accepted.job_id!, 30_000)).at(-1)!;
}

/** Submits, waits for a result, and says which worker ran the job. */
async function ran(
  c: WsClient,
  agent: string,
  input: Record<string, unknown> = {},
  lease?: Record<string, string[]>,
): Promise<Ran> {
  const end = await run(c, agent, input, lease);
  equal(end.type, "job.result", JSON.stringify(end.payload));
  return end.payload.result as Ran;
}

/**
 * Runs `fn` against a server whose agents count as hung after 1 s without
 * a beat (so the tests of hung workers end soon), or after `missedBeats`
 * beats of 200 ms.
 */
async function withServer(
  fn: (server: TestServer) => Promise<void>,
  missedBeats = 5,
): Promise<void> {
  await using server = await startServer({
    agentsDir: AGENTS,
    liveness: { beatIntervalMs: 200, missedBeats },
  });
  await fn(server);
}

Deno.test("reuse: successive jobs of one key share a worker, up to maxJobs", () =>
  withServer(async (server) => {
    await using c = await connect(server.url);
    const runs = [];
    for (let i = 0; i < 4; i++) runs.push(await ran(c, "reuser"));
    // maxJobs is 3: the first three ran in one worker, the fourth in a new one.
    equal(runs[1].worker, runs[0].worker);
    equal(runs[2].worker, runs[0].worker);
    deepEqual(runs.slice(0, 3).map((r) => r.served), [1, 2, 3]);
    notEqual(runs[3].worker, runs[0].worker);
    equal(runs[3].served, 1);
  }));

Deno.test("reuse never crosses principals or permission sets", () =>
  withServer(async (server) => {
    await using alice = await connect(server.url, "alice-token");
    await using bob = await connect(server.url, "bob-token");
    const dir = await Deno.makeTempDir({ prefix: "arcp_lease_" });
    const a1 = await ran(alice, "reuser");
    const b1 = await ran(bob, "reuser");
    const a2 = await ran(alice, "reuser", {}, { "fs.read": [`${dir}/**`] });
    const a3 = await ran(alice, "reuser");
    notEqual(b1.worker, a1.worker, "another principal got alice's worker");
    notEqual(a2.worker, a1.worker, "another permission set got the worker");
    equal(a3.worker, a1.worker, "the same key should have reused the worker");
    await Deno.remove(dir, { recursive: true });
  }));

Deno.test("reuse: a job that fails, is cancelled past its grace or times out retires its worker", () =>
  withServer(async (server) => {
    await using c = await connect(server.url);
    const first = await ran(c, "reuser");
    const failed = await run(c, "reuser", { fail: true });
    equal(failed.type, "job.error");
    const afterFail = await ran(c, "reuser");
    notEqual(afterFail.worker, first.worker, "a worker whose job failed was reused");

    const hung = await c.submit({ agent: "reuser", input: { hang: true } });
    c.send("job.cancel", { reason: "stop" }, { job_id: hung.job_id });
    const cancelled = (await c.untilTerminal(hung.job_id!, 30_000)).at(-1)!;
    equal(cancelled.payload.code, "CANCELLED");
    const afterCancel = await ran(c, "reuser");
    notEqual(afterCancel.worker, afterFail.worker, "a worker whose job was killed was reused");

    const timedOut = await c.submit({
      agent: "reuser",
      input: { hang: true },
      max_runtime_sec: 1,
    });
    const timeout = (await c.untilTerminal(timedOut.job_id!, 30_000)).at(-1)!;
    equal(timeout.type, "job.error");
    const afterTimeout = await ran(c, "reuser");
    notEqual(afterTimeout.worker, afterCancel.worker, "a worker whose job timed out was reused");
  }));

Deno.test("reuse: a worker idle past idleSec is retired", () =>
  withServer(async (server) => {
    await using c = await connect(server.url);
    const first = await ran(c, "idler");
    // idleSec is 1; nothing else touches the worker meanwhile.
    await new Promise((r) => setTimeout(r, 2500));
    const second = await ran(c, "idler");
    notEqual(second.worker, first.worker);
  }));

Deno.test("concurrency: up to 3 jobs of one key run in one worker at once, never across principals", () =>
  withServer(async (server) => {
    await using alice = await connect(server.url, "alice-token");
    await using bob = await connect(server.url, "bob-token");
    const submit = async (c: WsClient) => {
      const a = await c.submit({ agent: "sharer", input: { ms: 1500 } });
      equal(a.type, "job.accepted");
      return a.job_id!;
    };
    const aliceJobs = [];
    for (let i = 0; i < 4; i++) aliceJobs.push(await submit(alice));
    const bobJob = await submit(bob);
    const results = async (c: WsClient, ids: string[]) =>
      await Promise.all(ids.map(async (id) => {
        const end = (await c.untilTerminal(id, 30_000)).at(-1)!;
        equal(end.type, "job.result", JSON.stringify(end.payload));
        return end.payload.result as Ran;
      }));
    const [a, [b]] = await Promise.all([results(alice, aliceJobs), results(bob, [bobJob])]);
    const workers = new Map<string, number>();
    for (const r of a) workers.set(r.worker, (workers.get(r.worker) ?? 0) + 1);
    deepEqual(
      [...workers.values()].sort(),
      [1, 3],
      "alice's 4 jobs: 3 in one worker, 1 in another",
    );
    ok(a.some((r) => r.peak === 3), "three jobs ran at once in the shared worker");
    ok(!workers.has(b.worker), "bob's job ran in one of alice's workers");
  }));

Deno.test("concurrency: a worker that dies ends exactly the jobs inside it, each with its error", () =>
  withServer(async (server) => {
    await using alice = await connect(server.url, "alice-token");
    await using bob = await connect(server.url, "bob-token");
    const bobJob = await bob.submit({ agent: "sharer", input: { ms: 2000 } });
    const sleepers = [];
    for (let i = 0; i < 2; i++) {
      sleepers.push((await alice.submit({ agent: "sharer", input: { ms: 20_000 } })).job_id!);
    }
    const exiting = (await alice.submit({ agent: "sharer", input: { exit: true } })).job_id!;
    for (const id of [...sleepers, exiting]) {
      const end = (await alice.untilTerminal(id, 30_000)).at(-1)!;
      equal(end.type, "job.error");
      equal(end.payload.code, "INTERNAL_ERROR");
      ok(/Deno\.exit\(\)/.test(end.payload.message), end.payload.message);
    }
    const bobEnd = (await bob.untilTerminal(bobJob.job_id!, 30_000)).at(-1)!;
    equal(bobEnd.type, "job.result", JSON.stringify(bobEnd.payload));
    // alice's next job gets a new worker.
    const next = await ran(alice, "sharer");
    equal(next.served, 1);
  }));

Deno.test("concurrency: a hung shared worker ends the jobs inside it HEARTBEAT_LOST; others run on", () =>
  withServer(async (server) => {
    await using alice = await connect(server.url, "alice-token");
    await using bob = await connect(server.url, "bob-token");
    const bobJob = await bob.submit({ agent: "sharer", input: { ms: 3000 } });
    const sleeper = (await alice.submit({ agent: "sharer", input: { ms: 20_000 } })).job_id!;
    const spinner = (await alice.submit({ agent: "sharer", input: { spin: true } })).job_id!;
    for (const id of [sleeper, spinner]) {
      const end = (await alice.untilTerminal(id, 30_000)).at(-1)!;
      equal(end.payload.code, "HEARTBEAT_LOST", JSON.stringify(end.payload));
    }
    const bobEnd = (await bob.untilTerminal(bobJob.job_id!, 30_000)).at(-1)!;
    equal(bobEnd.type, "job.result", JSON.stringify(bobEnd.payload));
  }));

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a process is alive (its /proc entry exists). */
async function alive(pid: number): Promise<boolean> {
  try {
    await Deno.stat(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

Deno.test("fresh isolation: every job gets a fresh worker; a process serves only its principal's next jobs", () =>
  withServer(async (server) => {
    await using alice = await connect(server.url, "alice-token");
    await using bob = await connect(server.url, "bob-token");
    const a = [];
    const b = [];
    for (let i = 0; i < 5; i++) {
      a.push(await ran(alice, "fresh"));
      b.push(await ran(bob, "fresh"));
      // Time for the processes to ready a fresh worker for their principal's next job.
      await pause(1000);
    }
    equal(new Set([...a, ...b].map((r) => r.worker)).size, 10, "a worker served two jobs");
    ok([...a, ...b].every((r) => r.served === 1));
    const alicePids = new Set(a.map((r) => r.pid));
    ok(alicePids.size < 5, "no process served a second job: recycling never happened");
    ok(b.every((r) => !alicePids.has(r.pid)), "a process of alice's served bob");
  }));

Deno.test("fresh isolation: a process whose job failed, or left a thread running, serves no other job", () =>
  withServer(async (server) => {
    await using c = await connect(server.url);
    const failed = await c.submit({ agent: "fresh", input: { fail: true } });
    equal((await c.untilTerminal(failed.job_id!)).at(-1)!.type, "job.error");
    // Starting a thread holds the agent's event loop, under load for about a second (measured):
    // this server waits 10 s for a beat.
    const threaded = await ran(c, "fresh", { thread: true });
    await pause(1000);
    const next = [];
    for (let i = 0; i < 3; i++) {
      next.push(await ran(c, "fresh"));
      await pause(500);
    }
    ok(
      next.every((r) => r.pid !== threaded.pid),
      "a process with a thread left running took a job",
    );
    // Its process was killed, spinning thread and all.
    for (let i = 0; i < 50 && await alive(threaded.pid); i++) await pause(100);
    ok(!(await alive(threaded.pid)), "the process with the leftover thread is still running");
  }, 50));

Deno.test("jobsPerProcess 1: every job gets a process of its own", async () => {
  await using server = await startServer({ agentsDir: AGENTS, jobsPerProcess: 1 });
  await using c = await connect(server.url);
  const runs = [];
  for (let i = 0; i < 4; i++) {
    runs.push(await ran(c, "fresh"));
    await pause(500);
  }
  equal(new Set(runs.map((r) => r.pid)).size, 4);
});

Deno.test("a worker started ahead for one permission set never serves another", () =>
  withServer(async (server) => {
    await using c = await connect(server.url);
    const a = await Deno.makeTempDir({ prefix: "arcp_lease_a_" });
    const b = await Deno.makeTempDir({ prefix: "arcp_lease_b_" });
    await Deno.writeTextFile(`${a}/f`, "in a");
    await Deno.writeTextFile(`${b}/f`, "in b");
    const leaseA = { "fs.read": [`${a}/**`] };
    // Jobs leased `a` make the pool start workers for that key ahead.
    for (let i = 0; i < 4; i++) {
      equal((await ran(c, "fresh", { read: `${a}/f` }, leaseA)).text, "in a");
    }
    equal((await ran(c, "fresh", { read: `${b}/f` }, { "fs.read": [`${b}/**`] })).text, "in b");
    const unleased = await run(c, "fresh", { read: `${a}/f` });
    equal(unleased.payload.code, "PERMISSION_DENIED", JSON.stringify(unleased.payload));
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }));

Deno.test("reuse: jobs past the key's worker limit wait for room instead of starting processes", () =>
  withServer(async (server) => {
    await using c = await connect(server.url);
    const limit = Math.max(2, navigator.hardwareConcurrency ?? 2);
    const ids = [];
    for (let i = 0; i < limit + 3; i++) {
      ids.push((await c.submit({ agent: "reuser", input: { ms: 800 } })).job_id!);
    }
    const runs = await Promise.all(ids.map(async (id) => {
      const end = (await c.untilTerminal(id, 30_000)).at(-1)!;
      equal(end.type, "job.result", JSON.stringify(end.payload));
      return end.payload.result as Ran;
    }));
    const workers = new Set(runs.map((r) => r.worker));
    // A worker that served its 3 jobs (`maxJobs`) retires, and room opens for
    // another: only those may bring the count past the limit.
    const retired = new Set(runs.filter((r) => r.served === 3).map((r) => r.worker));
    ok(
      workers.size <= limit + retired.size,
      `${workers.size} workers for one key (${retired.size} retired); the limit is ${limit}`,
    );
  }));

Deno.test("a job that finds the sandbox at capacity past sandboxWaitMs ends with a retryable sandbox_busy cap error", async () => {
  await using server = await startServer({ agentsDir: AGENTS, sandboxWaitMs: 500 });
  await using c = await connect(server.url);
  const limit = Math.max(2, navigator.hardwareConcurrency ?? 2);
  // Every worker the key may have is held by a job that never returns. Each
  // is known to hold its worker once it says so; on a loaded host a worker
  // may take longer than sandboxWaitMs to start, and the job that waited for
  // it ends sandbox_busy: it is submitted again, as an ARCP client would.
  const hung: string[] = [];
  for (let attempt = 0; hung.length < limit; attempt++) {
    ok(attempt < 10, "no job came to hold a worker in 10 attempts");
    const id = (await c.submit({ agent: "reuser", input: { hang: true } })).job_id!;
    const said = await c.next(
      (e) =>
        e.job_id === id &&
        (e.type === "job.error" || (e.type === "job.event" && e.payload.body?.phase === "hanging")),
      30_000,
      `job ${id} holding a worker`,
    );
    if (said.type === "job.event") hung.push(id);
    else equal(said.payload.details?.cap, "sandbox_busy", JSON.stringify(said.payload));
  }
  const extra = await c.submit({ agent: "reuser", input: {} });
  const end = (await c.untilTerminal(extra.job_id!, 30_000)).at(-1)!;
  equal(end.type, "job.error");
  equal(end.payload.code, "INTERNAL_ERROR");
  equal(end.payload.retryable, true);
  equal(end.payload.details?.cap, "sandbox_busy", JSON.stringify(end.payload));
  for (const id of hung) c.send("job.cancel", { reason: "done" }, { job_id: id });
  for (const id of hung) await c.untilTerminal(id, 30_000);
});

/**
 * Waits until the pool holds a process whose worker, started ahead of any
 * job, is ready: `warm` and `recycled` count only those (a worker still
 * loading is `readying`, and a job given one waits with the grace of a
 * loading worker, which on a loaded machine it did here).
 */
async function untilReadiedAhead(http: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (true) {
    const text = await (await fetch(`${http}/metrics`)).text();
    const readied = text.split("\n").filter((l) =>
      /^arcp_sandbox_pool_processes\{pool="(warm|recycled)"\} [1-9]/.test(l)
    );
    if (readied.length > 0) return;
    if (Date.now() > deadline) throw new Error(`no worker was readied ahead:\n${text}`);
    await pause(50);
  }
}

Deno.test("fresh isolation: a job that blocks at once in a worker readied ahead ends HEARTBEAT_LOST, without the grace of a loading worker", () =>
  withServer(async (server) => {
    await using c = await connect(server.url);
    // A first job makes its key wanted: the pool readies workers for it, which beat from their
    // warm-up on, so the job below posts nothing before it blocks. Judged with the grace of a
    // worker still loading (30 s), it would outlast the wait below.
    equal((await run(c, "fresh", {})).type, "job.result");
    await untilReadiedAhead(server.http);
    const accepted = await c.submit({ agent: "fresh", input: { spin: true } });
    const end = (await c.untilTerminal(accepted.job_id!, 15_000)).at(-1)!;
    equal(end.type, "job.error");
    equal(end.payload.code, "HEARTBEAT_LOST", JSON.stringify(end.payload));
    // The pool goes on serving the key.
    equal((await run(c, "fresh", {})).type, "job.result");
  }));

Deno.test("fresh isolation: a job given a worker that hung while it waited ready ends HEARTBEAT_LOST", () =>
  withServer(async (server) => {
    await using c = await connect(server.url);
    // The first worker of the key may answer before its module blocks, or not.
    const first = await run(c, "stalls", {});
    ok(first.type === "job.result" || first.payload.code === "HEARTBEAT_LOST");
    await untilReadiedAhead(server.http);
    // Every worker of `stalls` blocks 300 ms after it loads: by now the readied one has.
    await pause(1000);
    const accepted = await c.submit({ agent: "stalls", input: {} });
    const end = (await c.untilTerminal(accepted.job_id!, 15_000)).at(-1)!;
    equal(end.type, "job.error");
    equal(end.payload.code, "HEARTBEAT_LOST", JSON.stringify(end.payload));
  }));

Deno.test("fresh isolation: a worker warmed ahead ran no agent code and carries nothing of its warm-up into its job", () =>
  withServer(async (server) => {
    await using c = await connect(server.url);
    const lease = { "fs.read": ["/nonexistent/warmed/**"] };
    // A first job makes its key wanted: the pool readies workers for it.
    equal((await run(c, "warmed", {}, lease)).type, "job.result");
    // A readied process's worker may still be loading its agent when the job comes (a busy
    // machine): that job proves nothing about warming, so another is tried, up to ten.
    let aheadSeen = false;
    for (let attempt = 0; attempt < 10 && !aheadSeen; attempt++) {
      await untilReadiedAhead(server.http);
      const submittedAt = Date.now();
      const accepted = await c.submit({ agent: "warmed", input: {}, lease_request: lease });
      equal(accepted.type, "job.accepted", JSON.stringify(accepted.payload));
      const seen = await c.untilTerminal(accepted.job_id!, 30_000);
      const end = seen.at(-1)!;
      equal(end.type, "job.result", JSON.stringify(end.payload));
      const r = end.payload.result as {
        loadedAt: number;
        runs: number;
        jobId: string;
        lease: Record<string, string[]>;
        credentials: number;
        aborted: boolean;
      };
      aheadSeen = r.loadedAt < submittedAt;
      // The warm-ups (the bootstrap's own, then the sandbox process's dummy job through the
      // worker's port) ran the bootstrap, never the agent: this job is its first run.
      equal(r.runs, 1);
      equal(r.jobId, accepted.job_id);
      deepEqual(r.lease, lease);
      equal(r.credentials, 0);
      equal(r.aborted, false, "the warm-up's aborted dummy signal reached the job");
      // Besides the runtime's own status, exactly the agent's one event: nothing of the warm-up's slot.
      deepEqual(
        seen.filter((e) => e.type === "job.event" && e.payload.kind !== "status")
          .map((e) => e.payload.kind),
        ["progress"],
      );
    }
    ok(aheadSeen, "no job of ten ran in a worker started ahead");
  }));

Deno.test("a flood of fresh jobs past what the sandbox can start soon is refused at submit with a retryable sandbox_busy; every accepted job completes", async () => {
  await using server = await startServer({ agentsDir: AGENTS, warmPool: 0, sandboxQueueMs: 1 });
  await using c = await connect(server.url);
  // Sent at once: processes start a few at a time, and each job holds one for a second.
  const traces = Array.from({ length: 40 }, (_, i) => {
    const trace = crypto.randomUUID().replaceAll("-", "");
    c.send("job.submit", { agent: "fresh", input: { ms: 1000, i } }, { trace_id: trace });
    return trace;
  });
  const answers = await Promise.all(traces.map((trace) =>
    c.next(
      (e) => (e.type === "job.accepted" || e.type === "job.error") && e.trace_id === trace,
      30_000,
      "submit answer",
    )
  ));
  const refused = answers.filter((a) => a.type === "job.error");
  const accepted = answers.filter((a) => a.type === "job.accepted");
  ok(refused.length > 0, "no submit was refused");
  ok(accepted.length > 0, "every submit was refused");
  for (const r of refused) {
    equal(r.payload.code, "INTERNAL_ERROR");
    equal(r.payload.retryable, true);
    equal(r.payload.details?.cap, "sandbox_busy", JSON.stringify(r.payload));
  }
  for (const a of accepted) {
    const end = (await c.untilTerminal(a.job_id!, 60_000)).at(-1)!;
    equal(end.type, "job.result", JSON.stringify(end.payload));
  }
});

Deno.test("an agent whose module awaits at its top level gets its job: nothing posted to its worker meanwhile is lost", async () => {
  // Its job's start reaches the worker while the module still loads; it was
  // dropped, and the job failed HEARTBEAT_LOST 30 s later.
  await using server = await startServer({
    agentsDir: `${ROOT}/tests/fixtures/slow_start`,
    warmPool: 0,
  });
  await using c = await connect(server.url);
  const a = await c.submit({ agent: "slow-start", input: { hello: 1 } });
  equal(a.type, "job.accepted", JSON.stringify(a.payload));
  const end = (await c.untilTerminal(a.job_id!, 60_000)).at(-1)!;
  equal(end.type, "job.result", JSON.stringify(end.payload));
  deepEqual(end.payload.result, { hello: 1 });
});

/**
 * Submits one `slow-start` job more than may start at once, so one waits (no
 * worker is ready for seconds), and checks each was accepted.
 */
async function overfillStarts(c: WsClient): Promise<Env[]> {
  const starting = Math.max(2, navigator.hardwareConcurrency ?? 2);
  const burst = await Promise.all(
    Array.from({ length: starting + 1 }, (_, i) => c.submit({ agent: "slow-start", input: i })),
  );
  for (const a of burst) equal(a.type, "job.accepted", JSON.stringify(a.payload));
  return burst;
}

Deno.test("a burst of fresh jobs is accepted, but a queue whose oldest job has waited past --sandbox-queue-ms refuses a fresh submit, however short", async () => {
  const budgetMs = 500;
  await using server = await startServer({
    agentsDir: `${ROOT}/tests/fixtures/slow_start`,
    warmPool: 0,
    sandboxQueueMs: budgetMs,
  });
  await using c = await connect(server.url);
  const burst = await overfillStarts(c);
  // The budget is a wait, so it takes waiting to cross it; the agent's load outlasts this.
  await new Promise((r) => setTimeout(r, budgetMs + 500));
  const late = await c.submit({ agent: "slow-start", input: "late" });
  equal(late.type, "job.error", JSON.stringify(late.payload));
  equal(late.payload.code, "INTERNAL_ERROR");
  equal(late.payload.retryable, true);
  equal(late.payload.details?.cap, "sandbox_busy", JSON.stringify(late.payload));
  for (const [i, a] of burst.entries()) {
    const end = (await c.untilTerminal(a.job_id!, 60_000)).at(-1)!;
    equal(end.type, "job.result", JSON.stringify(end.payload));
    equal(end.payload.result, i);
  }
});

Deno.test("a fresh queue that has not emptied for a quarter of --sandbox-queue-ms is overload: a submit expected to wait past a tenth of it is refused, though within the budget", async () => {
  const budgetMs = 2000;
  await using server = await startServer({
    agentsDir: `${ROOT}/tests/fixtures/slow_start`,
    warmPool: 0,
    sandboxQueueMs: budgetMs,
  });
  await using c = await connect(server.url);
  const burst = await overfillStarts(c);
  // Past a quarter of the budget, well within the whole of it and the agent's 2.5 s load.
  await new Promise((r) => setTimeout(r, budgetMs / 4 + 200));
  const late = await c.submit({ agent: "slow-start", input: "late" });
  equal(late.type, "job.error", JSON.stringify(late.payload));
  equal(late.payload.code, "INTERNAL_ERROR");
  equal(late.payload.retryable, true);
  equal(late.payload.details?.cap, "sandbox_busy", JSON.stringify(late.payload));
  ok(String(late.payload.message).includes("not emptied"), late.payload.message);
  for (const [i, a] of burst.entries()) {
    const end = (await c.untilTerminal(a.job_id!, 60_000)).at(-1)!;
    equal(end.type, "job.result", JSON.stringify(end.payload));
    equal(end.payload.result, i);
  }
});

/** The nice value of every thread of a process (read by `cat`: Deno opens another process's `/proc` only with `--allow-all`). */
async function threadNices(pid: number): Promise<number[]> {
  const out = await new Deno.Command("/bin/sh", {
    args: ["-c", 'cat /proc/"$1"/task/*/stat', "sh", String(pid)],
    stdout: "piped",
  }).output();
  // Fields after the parenthesised name (which may hold spaces): nice is the 17th.
  return new TextDecoder().decode(out.stdout).trim().split("\n").map((line) =>
    Number(line.slice(line.lastIndexOf(")") + 2).split(" ")[16])
  );
}

Deno.test("sandbox processes run every thread at a lower CPU priority than the runtime", () =>
  withServer(async (server) => {
    await using c = await connect(server.url);
    const { pid } = await ran(c, "fresh", { ms: 1 });
    const nices = await threadNices(pid);
    ok(nices.length > 1, `threads of ${pid}: ${nices}`);
    const expected = Math.min(19, getPriority() + SANDBOX_NICE_OFFSET);
    deepEqual(nices, nices.map(() => expected));
  }));

Deno.test("concurrency: with every turn's budget spent at once, a burst of shared jobs over two principals starts every job exactly once, each announcing running first, in seq order", async () => {
  // Every bounded loop (settling commits, announcing running, reading
  // sandbox frames, starting processes, inbound frames) yields as often as
  // it can: what each guarantees must hold when its bound is hit.
  const before = setTurnSliceMs(0);
  try {
    // No process waits ready: every shared worker of the burst needs one started.
    await using server = await startServer({
      agentsDir: AGENTS,
      warmPool: 0,
      liveness: { beatIntervalMs: 200, missedBeats: 5 },
    });
    await using alice = await connect(server.url, "alice-token");
    await using bob = await connect(server.url, "bob-token");
    const burst = (c: WsClient) =>
      Promise.all(
        Array.from({ length: 7 }, () => c.submit({ agent: "sharer", input: { ms: 300 } })),
      );
    const [aAccepted, bAccepted] = await Promise.all([burst(alice), burst(bob)]);
    const finish = (c: WsClient, accepted: Env[]) =>
      Promise.all(accepted.map(async (a) => {
        equal(a.type, "job.accepted", JSON.stringify(a.payload));
        const seen = await c.untilTerminal(a.job_id!, 30_000);
        const end = seen.at(-1)!;
        equal(end.type, "job.result", JSON.stringify(end.payload));
        equal(seen.filter((e) => e.type === "job.result").length, 1);
        const first = seen[0];
        equal(first.type, "job.event");
        deepEqual(first.payload.body, { phase: "running" }, "running was not the first event");
        const seqs = seen.map((e) => e.event_seq!);
        deepEqual(seqs, [...seqs].sort((x, y) => x - y), `seqs out of order: ${seqs}`);
        const order = c.seen.filter((e) => e.job_id === a.job_id).map((e) => e.type);
        equal(order[0], "job.accepted", "an event came before job.accepted");
        return end.payload.result as Ran;
      }));
    const [a, b] = await Promise.all([finish(alice, aAccepted), finish(bob, bAccepted)]);
    for (const runs of [a, b]) {
      // Each job started once: the workers counted as many starts as there were jobs.
      const served = new Map<string, number>();
      for (const r of runs) served.set(r.worker, Math.max(served.get(r.worker) ?? 0, r.served));
      equal([...served.values()].reduce((x, y) => x + y, 0), runs.length, "a job started twice");
      ok(runs.every((r) => r.peak <= 3), "a shared worker ran more than its concurrency");
    }
    const aliceWorkers = new Set(a.map((r) => r.worker));
    ok(!b.some((r) => aliceWorkers.has(r.worker)), "bob's job ran in one of alice's workers");
  } finally {
    setTurnSliceMs(before);
  }
});

Deno.test("reuse: a burst over more principals than processes may start at once, none waiting ready: every job runs once, in a worker of its own principal", async () => {
  // Process starts are bounded and taken in turn, key by key: every key's
  // jobs must still get a worker, none lost and none in another's.
  const limit = Math.max(2, navigator.hardwareConcurrency ?? 2);
  const principals = Array.from({ length: limit + 4 }, (_, i) => `user${i}`);
  await using server = await startServer({
    agentsDir: AGENTS,
    warmPool: 0,
    tokens: Object.fromEntries(principals.map((p) => [`${p}-token`, p])),
    liveness: { beatIntervalMs: 200, missedBeats: 5 },
  });
  const clients = await Promise.all(principals.map((p) => connect(server.url, `${p}-token`)));
  try {
    const accepted = await Promise.all(
      clients.map((c) =>
        Promise.all(Array.from({ length: 4 }, () => c.submit({ agent: "reuser", input: {} })))
      ),
    );
    const runs = await Promise.all(clients.map((c, i) =>
      Promise.all(accepted[i].map(async (a) => {
        equal(a.type, "job.accepted", JSON.stringify(a.payload));
        const seen = await c.untilTerminal(a.job_id!, 30_000);
        equal(seen.filter((e) => e.type === "job.result").length, 1);
        const end = seen.at(-1)!;
        equal(end.type, "job.result", JSON.stringify(end.payload));
        return end.payload.result as Ran;
      }))
    ));
    const owner = new Map<string, string>();
    runs.forEach((mine, i) => {
      const served = new Map<string, number>();
      for (const r of mine) {
        const other = owner.get(r.worker);
        ok(
          other === undefined || other === principals[i],
          `${principals[i]} ran in ${other}'s worker`,
        );
        owner.set(r.worker, principals[i]);
        served.set(r.worker, Math.max(served.get(r.worker) ?? 0, r.served));
      }
      equal([...served.values()].reduce((x, y) => x + y, 0), mine.length, "a job started twice");
    });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

Deno.test("reuse: each principal that opens a session gets workers readied ahead; a burst of their new keys then runs every job once, each key in workers of its own", async () => {
  // A worker readied ahead is a shared worker of one key (its principal,
  // agent and permissions) from its start, like any other.
  const principals = ["ann", "bea", "cid", "dov", "eli"];
  await using server = await startServer({
    agentsDir: AGENTS,
    tokens: Object.fromEntries(principals.map((p) => [`${p}-token`, p])),
    liveness: { beatIntervalMs: 200, missedBeats: 5 },
  });
  const clients = await Promise.all(principals.map((p) => connect(server.url, `${p}-token`)));
  try {
    await scrapeUntil(
      server.http,
      (t) => (sample(t, "arcp_sandbox_pool_processes", { pool: "shared" }) ?? 0) >= 5,
      "a worker readied ahead for each principal that opened a session",
    );
    const accepted = await Promise.all(
      clients.map((c) =>
        Promise.all(
          Array.from({ length: 4 }, (_, k) =>
            c.submit({ agent: k % 2 ? "sharer" : "reuser", input: {} })),
        )
      ),
    );
    const owner = new Map<string, string>();
    const hostOwner = new Map<number, string>();
    await Promise.all(clients.map((c, i) =>
      Promise.all(accepted[i].map(async (a, k) => {
        equal(a.type, "job.accepted", JSON.stringify(a.payload));
        const seen = await c.untilTerminal(a.job_id!, 30_000);
        equal(seen.filter((e) => e.type === "job.result").length, 1);
        const end = seen.at(-1)!;
        equal(end.type, "job.result", JSON.stringify(end.payload));
        const key = `${principals[i]} ${k % 2 ? "sharer" : "reuser"}`;
        const r = end.payload.result as Ran;
        const other = owner.get(r.worker);
        ok(other === undefined || other === key, `${key} ran in ${other}'s worker`);
        owner.set(r.worker, key);
        const host = hostOwner.get(r.pid);
        ok(host === undefined || host === key, `${key} ran in ${host}'s process`);
        hostOwner.set(r.pid, key);
      }))
    ));
    // Every key (principal × agent) ran in workers of its own.
    equal(new Set(owner.values()).size, principals.length * 2);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

Deno.test("reuse: a worker readied ahead of a principal's first job serves only its own key, never another principal or permission set, and goes when that first job has another lease", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_lease_" });
  await Deno.writeTextFile(`${dir}/f`, "leased");
  const lease = { "fs.read": [`${dir}/**`] };
  const read = { read: `${dir}/f` };
  const shared = (t: string) => sample(t, "arcp_sandbox_pool_processes", { pool: "shared" }) ?? 0;
  await using server = await startServer({
    agentsDir: `${ROOT}/tests/fixtures/ahead`,
    tokens: { ...TOKENS, "carol-token": "carol" },
    liveness: { beatIntervalMs: 200, missedBeats: 5 },
  });
  try {
    // No job of the agent yet: each worker readied ahead has an empty lease's permissions.
    await using alice = await connect(server.url, "alice-token");
    await using bob = await connect(server.url, "bob-token");
    await scrapeUntil(
      server.http,
      (t) => shared(t) === 2,
      "alice's and bob's workers readied ahead",
    );
    // Bob's first job asks for more: it must not run in his worker readied
    // ahead (its read would be denied), and that worker, which served
    // nothing, goes.
    const b1 = await ran(bob, "reuser", read, lease);
    equal(b1.text, "leased");
    equal(b1.served, 1);
    await scrapeUntil(server.http, (t) => shared(t) === 2, "bob's worker readied ahead discarded");
    const a1 = await ran(alice, "reuser");
    notEqual(a1.worker, b1.worker, "alice's job ran in bob's worker");
    notEqual(a1.pid, b1.pid, "alice's job ran in bob's process");
    // Carol's worker is readied with the agent's last key's permissions
    // (bob's lease), under her key: her job without that lease must not run
    // in it, and her job with it runs in a worker and process of her own.
    await using carol = await connect(server.url, "carol-token");
    await scrapeUntil(server.http, (t) => shared(t) === 3, "carol's worker readied ahead");
    const denied = await run(carol, "reuser", read);
    equal(denied.payload.code, "PERMISSION_DENIED", JSON.stringify(denied.payload));
    const c1 = await ran(carol, "reuser", read, lease);
    equal(c1.text, "leased");
    for (const other of [a1, b1]) {
      notEqual(c1.worker, other.worker, "carol's job ran in another principal's worker");
      notEqual(c1.pid, other.pid, "carol's job ran in another principal's process");
    }
    // Each key keeps its own worker.
    equal((await ran(bob, "reuser", read, lease)).worker, b1.worker);
    equal((await ran(alice, "reuser")).worker, a1.worker);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
