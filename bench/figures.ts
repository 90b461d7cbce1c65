/**
 * The figures `Deno.bench` cannot express (percentiles over a fixed job
 * count, throughput, memory): each runs against a real runtime on a real
 * loopback port with its KV file in a temp dir, prints its numbers, and at
 * the end the whole set goes to stdout as a Markdown table and to
 * `bench/RESULTS.md`.
 *
 * Figures report; they never assert timings.
 *
 * ```sh
 * deno task bench:figures                # everything
 * deno task bench:figures --only 1,4     # some figures
 * deno task bench:figures --scale 0.1    # smaller counts, for a quick look
 * deno task bench:figures --no-write     # do not touch bench/RESULTS.md
 * ```
 *
 * @module
 */
import type { RuntimeOptions } from "../mod.ts";
import { probeMemory, totalKiB } from "./memory_probe.ts";
import { flags, heading, report, rows, SCALE, scaled } from "./_report.ts";
import { figure11 } from "./sandbox_figures.ts";
import { figure7 } from "./replay_figures.ts";
import { figure13 } from "./store_figures.ts";
import { figure14 } from "./store_damage_figures.ts";
import { figure15 } from "./slow_reader_figures.ts";
import {
  agentWorkerRoundTrip,
  BenchClient,
  fmt,
  type JobRun,
  machineFacts,
  markdownTable,
  percentile,
  pool,
  rawProcessStart,
  rawWorkerRoundTrip,
  type ResultRow,
  ROOT,
  rssKiB,
  startBenchServer,
  startChildServer,
  type Stats,
  stats,
} from "./_util.ts";
import { figure12 } from "./events_figures.ts";
import { Inspector } from "./_inspector.ts";
import { figure16 } from "./nodes_figures.ts";

const ONLY = flags.only
  ? new Set(String(flags.only).split(",").map((s: string) => Number(s.trim())))
  : undefined;

const ms = (n: number) => fmt(n, n < 10 ? 2 : 1);

/** Runs `n` echo jobs one after another on one session; returns submit→result times (ms). */
async function sequentialEcho(client: BenchClient, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const run = await client.run("echo", { i });
    out.push(run.endedAt! - run.submittedAt);
  }
  return out;
}

// ---- 1. boundary costs: submit→result latency and its ceilings -------------

/** The three ways a job's worker can run, compared side by side in figures 1–3. */
const BOUNDARIES = [
  {
    key: "a",
    label: "warm pool",
    what: "sandbox process from the warm pool (default)",
    options: { sandbox: "process" },
  },
  {
    key: "b",
    label: "cold process",
    what: "cold sandbox process per job (warmPool 0)",
    options: { sandbox: "process", warmPool: 0 },
  },
  {
    key: "c",
    label: "worker",
    what: "in-process worker (sandbox worker)",
    options: { sandbox: "worker" },
  },
] as const satisfies ReadonlyArray<{
  key: string;
  label: string;
  what: string;
  options: Partial<RuntimeOptions>;
}>;

type Boundary = (typeof BOUNDARIES)[number];

/** Reports p50, p99 and mean of a sample as three rows. */
function reportLatency(figure: string, metric: string, s: Stats, notes?: string): void {
  report({ figure, metric: `${metric} p50`, value: ms(s.p50), unit: "ms", notes });
  report({ figure, metric: `${metric} p99`, value: ms(s.p99), unit: "ms", notes });
}

async function figure1(): Promise<void> {
  const p50 = new Map<string, number>();
  for (const b of BOUNDARIES) {
    // A cold process per job costs a process start each: fewer jobs keep the run short.
    const n = b.key === "b" ? scaled(100, 10) : scaled(500, 20);
    const warmup = b.key === "b" ? 5 : 20;
    heading(`1${b.key}. echo submit→result, ${n} sequential jobs on one session: ${b.what}`);
    await using server = await startBenchServer(b.options);
    const client = await BenchClient.connect(server.url);
    await sequentialEcho(client, warmup); // module compile and JIT, pool filled
    const t0 = performance.now();
    const s = stats(await sequentialEcho(client, n));
    const elapsed = performance.now() - t0;
    await client.close();
    p50.set(b.key, s.p50);
    const figure = `1${b.key}. echo (${b.label})`;
    reportLatency(
      figure,
      "submit→result",
      s,
      `${n} jobs one after another, after ${warmup} warm-up jobs; mean ${ms(s.mean)} ms`,
    );
    report({
      figure,
      metric: "sequential jobs/s",
      value: fmt(n / (elapsed / 1000), 1),
      unit: "jobs/s",
      notes: "one job in flight: the next is submitted when the last result arrives",
    });
  }

  // The ceilings, measured in the same run so that the ratios compare like with like.
  const n = scaled(40, 5);
  heading(`1d. ceilings: raw worker and process start, ${n} samples each`);
  await rawWorkerRoundTrip();
  await agentWorkerRoundTrip();
  const readyModule = `${ROOT}/bench/process_ready.ts`;
  await rawProcessStart(readyModule); // the first run compiles the module into the cache
  const raw = stats(await pool(Array.from({ length: n }), 1, rawWorkerRoundTrip));
  const agent = stats(await pool(Array.from({ length: n }), 1, agentWorkerRoundTrip));
  const proc = stats(await pool(Array.from({ length: n }), 1, () => rawProcessStart(readyModule)));
  const figure = "1d. ceilings";
  reportLatency(figure, "raw new Worker + message round trip,", raw, "inline echo module");
  report({
    figure,
    metric: "new Worker + sandbox bootstrap + echo agent result, p50",
    value: ms(agent.p50),
    unit: "ms",
    notes: "the entry module as the runtime builds it, no runtime around it",
  });
  reportLatency(
    figure,
    "raw deno run spawn → ready,",
    proc,
    "one-line module, project config, --cached-only",
  );

  const figureR = "1e. ratios (same run)";
  const ratio = (metric: string, v: number, notes: string) =>
    report({ figure: figureR, metric, value: `${fmt(v, 2)}×`, unit: "", notes });
  const [a, b, c] = ["a", "b", "c"].map((k) => p50.get(k)!);
  ratio("warm pool ÷ worker, p50", a / c, `${ms(a)} ms vs ${ms(c)} ms`);
  ratio("cold process ÷ worker, p50", b / c, `${ms(b)} ms vs ${ms(c)} ms`);
  ratio(
    "(cold process − worker) ÷ raw deno run start, p50",
    (b - c) / proc.p50,
    `a cold process adds ${ms(b - c)} ms; a bare deno run starts in ${ms(proc.p50)} ms`,
  );
  ratio(
    "(warm pool − worker) ÷ raw new Worker, p50",
    (a - c) / raw.p50,
    `the process boundary adds ${ms(a - c)} ms when warm; a bare Worker starts in ${
      ms(raw.p50)
    } ms`,
  );
}

// ---- 2. jobs/s -----------------------------------------------------------

async function figure2(): Promise<void> {
  const total = scaled(400, 16);
  const depth = 4;
  for (const b of [BOUNDARIES[0], BOUNDARIES[2]]) {
    heading(`2${b.key}. echo throughput, ${total} jobs per run, ${depth} in flight: ${b.what}`);
    await using server = await startBenchServer(b.options);
    for (const sessions of [1, 8]) {
      const clients = await Promise.all(
        Array.from({ length: sessions }, () => BenchClient.connect(server.url)),
      );
      await Promise.all(clients.map((c) => sequentialEcho(c, 4))); // warm-up
      const perSession = Math.ceil(total / sessions);
      const t0 = performance.now();
      await Promise.all(
        clients.map((c) =>
          pool(Array.from({ length: perSession }), depth, async (_, i) => {
            await c.run("echo", { i });
          })
        ),
      );
      const elapsed = performance.now() - t0;
      const jobs = perSession * sessions;
      report({
        figure: `2${b.key}. job throughput (${b.label})`,
        metric: `echo jobs/s, ${sessions} session${sessions > 1 ? "s" : ""}`,
        value: fmt(jobs / (elapsed / 1000), 0),
        unit: "jobs/s",
        notes: `${jobs} jobs, ${depth} in flight per session`,
      });
      await Promise.all(clients.map((c) => c.close()));
    }
  }
}

// ---- 3. events/s of one ticker -------------------------------------------

async function figure3(): Promise<void> {
  const count = scaled(20_000, 500);
  for (const b of [BOUNDARIES[0], BOUNDARIES[2]]) {
    heading(`3${b.key}. one ticker job, count ${count}, interval_ms 0: ${b.what}`);
    await using server = await startBenchServer(b.options);
    const client = await BenchClient.connect(server.url);
    await client.run("ticker", { count: 100, interval_ms: 0 }); // warm-up
    const run = await client.run("ticker", { count, interval_ms: 0 });
    const secs = (run.endedAt! - run.submittedAt) / 1000;
    report({
      figure: `3${b.key}. ticker events/s (${b.label})`,
      metric: "events/s, one ticker job, end to end (durable)",
      value: fmt(run.events / secs, 0),
      unit: "events/s",
      notes: `${run.events} job.event envelopes logged and received in ${
        fmt(secs)
      } s (submit→result)`,
    });
    await client.close();
  }
}

// ---- 4. job start cost when the pool has time to refill --------------------

async function figure4(): Promise<void> {
  const jobs = scaled(20, 5);
  const setups = [
    { label: "4a", what: "warm pool (2), jobs 300 ms apart", options: BOUNDARIES[0].options },
    {
      label: "4b",
      what: "cold process per job, jobs 300 ms apart",
      options: BOUNDARIES[1].options,
    },
    { label: "4c", what: "in-process worker, jobs 300 ms apart", options: BOUNDARIES[2].options },
  ];
  for (const setup of setups) {
    heading(`${setup.label}. job start cost, ${setup.what}: ${jobs} echo jobs`);
    await using server = await startBenchServer(setup.options);
    const c = await BenchClient.connect(server.url);
    // Warm-up: module compile and JIT in the runtime, so the figure is the sandbox's own cost.
    await sequentialEcho(c, 5);
    const times: number[] = [];
    for (let i = 0; i < jobs; i++) {
      // The gap lets the pool refill (and an idle machine settle), unlike figure 1's back to back.
      await new Promise((r) => setTimeout(r, 300));
      times.push(...await sequentialEcho(c, 1));
    }
    await c.close();
    const st = stats(times);
    report({
      figure: `${setup.label}. job start (${setup.options.sandbox})`,
      metric: `echo submit→result, median: ${setup.what}`,
      value: ms(st.p50),
      unit: "ms",
      notes: `p90 ${ms(st.p90)} ms, ${st.n} jobs`,
    });
  }
}

// ---- 5. ctx.fs.readText / ctx.fetch vs bare -------------------------------

async function figure5(): Promise<void> {
  const n = scaled(400, 20);
  const dataDir = await Deno.makeTempDir({ prefix: "arcp_bench_io_" });
  const path = `${dataDir}/data.txt`;
  await Deno.writeTextFile(path, "x".repeat(1024));
  const ac = new AbortController();
  const { promise: listening, resolve } = Promise.withResolvers<number>();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: ({ port }) => resolve(port) },
    () => new Response("y".repeat(1024)),
  );
  const url = `http://127.0.0.1:${await listening}/data`;
  try {
    for (const sandbox of ["process", "worker"] as const) {
      heading(`5. io-bench agent, sandbox "${sandbox}": ${n} calls per kind, 1 KiB file / body`);
      await using server = await startBenchServer({
        sandbox,
        agentsDir: `${ROOT}/bench/agents`,
      });
      const client = await BenchClient.connect(server.url);
      const lease = { "fs.read": [path], "net.fetch": [url] };
      const run = await client.run("io-bench", { path, url, n }, lease);
      const us = run.terminal!.payload.result.us_per_op as Record<string, number>;
      const figure = `5. lease-checked I/O (${sandbox})`;
      const notes = `mean of ${n} calls, inside the agent`;
      const row = (metric: string, v: number, extra?: string) =>
        report({ figure, metric, value: fmt(v, 1), unit: "µs/op", notes: extra ?? notes });
      row("bare Deno.readTextFile", us.bare_read);
      row("ctx.fs.readText", us.ctx_read, `+${fmt(us.ctx_read - us.bare_read, 1)} µs over bare`);
      row("bare fetch (loopback, body read)", us.bare_fetch);
      row(
        "ctx.fetch (loopback, body read)",
        us.ctx_fetch,
        `+${fmt(us.ctx_fetch - us.bare_fetch, 1)} µs over bare`,
      );
      row("ctx.authorize alone (lease check round trip)", us.ctx_authorize);
      await client.close();
    }
  } finally {
    ac.abort();
    await http.finished;
    await Deno.remove(dataDir, { recursive: true });
  }
}

// ---- 6. durable events/s, group commit ------------------------------------

/** Counts KV atomic commits made in this process while `fn` runs. */
async function countingCommits<T>(fn: () => Promise<T>): Promise<{ value: T; commits: number }> {
  const proto = Deno.AtomicOperation.prototype;
  const original = proto.commit;
  let commits = 0;
  proto.commit = function (this: Deno.AtomicOperation) {
    commits++;
    return original.call(this);
  };
  try {
    return { value: await fn(), commits };
  } finally {
    proto.commit = original;
  }
}

async function figure6(): Promise<void> {
  const cases = [
    { sessions: 1, count: scaled(10_000, 500) },
    { sessions: 50, count: scaled(1_000, 50) },
  ];
  heading("6. durable events/s: tickers (interval 0), each on its own session");
  await using server = await startBenchServer();
  for (const { sessions, count } of cases) {
    const clients = await Promise.all(
      Array.from({ length: sessions }, () => BenchClient.connect(server.url)),
    );
    await Promise.all(clients.map((c) => c.run("ticker", { count: 20, interval_ms: 0 })));
    const { value, commits } = await countingCommits(async () => {
      const t0 = performance.now();
      const runs = await Promise.all(
        clients.map((c) => c.run("ticker", { count, interval_ms: 0 })),
      );
      return { runs, elapsed: performance.now() - t0 };
    });
    const events = value.runs.reduce((n: number, r: JobRun) => n + r.events, 0);
    const seqEnvelopes = events + value.runs.length; // plus each job.result
    const secs = value.elapsed / 1000;
    const figure = "6. durable events/s";
    report({
      figure,
      metric: `events/s delivered, ${sessions} session${sessions > 1 ? "s" : ""}`,
      value: fmt(events / secs, 0),
      unit: "events/s",
      notes: `${sessions} × ticker count ${count}: ${events} events in ${
        fmt(secs)
      } s, first submit → last result`,
    });
    report({
      figure,
      metric: `envelopes per KV commit, ${sessions} session${sessions > 1 ? "s" : ""}`,
      value: fmt(seqEnvelopes / Math.max(1, commits), 1),
      unit: "envelopes/commit",
      notes: `${commits} atomic commits during the run`,
    });
    await Promise.all(clients.map((c) => c.close()));
  }
}

// ---- 8. memory of idle sessions -------------------------------------------

/** One round of figure 8: a fresh server, its RSS and JS heap without and with the idle sessions. */
interface IdleRound {
  sessions: number;
  /** RSS (KiB) 2 s after the sessions connected, no GC asked for (how figure 8 read it before). */
  rawBefore: number;
  rawAfter: number;
  /** RSS (KiB) after full GCs. */
  before: number;
  after: number;
  /** JS heap in use (bytes) after full GCs. */
  heapBefore: number;
  heapAfter: number;
}

/** Connects `sessions` idle sessions to a fresh `arcp serve` and reads its memory before and after. */
async function idleRound(sessions: number): Promise<IdleRound> {
  const batch = 50;
  const principals = 20; // the runtime caps connected sessions per principal at 100
  const dir = await Deno.makeTempDir({ prefix: "arcp_bench_mem_" });
  const tokensFile = `${dir}/tokens.txt`;
  const tokens = Array.from({ length: principals }, (_, i) => `mem${i}-token`);
  await Deno.writeTextFile(tokensFile, tokens.map((t, i) => `${t}=mem${i}`).join("\n") + "\n");
  // The inspector lets the bench collect the child's garbage before each reading.
  const child = await startChildServer(
    `${dir}/arcp.kv`,
    ["--tokens-file", tokensFile],
    {},
    undefined,
    [
      "--inspect=127.0.0.1:0",
    ],
  );
  const inspector = await Inspector.open(child.output());
  const clients: BenchClient[] = [];
  const settled = async () => {
    const raw = await rssKiB(pid);
    await inspector.collectGarbage();
    await new Promise((r) => setTimeout(r, 300));
    return { raw, rss: await rssKiB(pid), heap: await inspector.heapUsed() };
  };
  const pid = child.process.pid;
  try {
    // Warm the hello path so the baseline already holds its compiled code.
    const warm = await Promise.all(
      tokens.map((token) => BenchClient.connect(child.url, { token, features: [] })),
    );
    await Promise.all(warm.map((c) => c.close()));
    await new Promise((r) => setTimeout(r, 1000));
    const before = await settled();
    for (let i = 0; i < sessions; i += batch) {
      clients.push(
        ...await Promise.all(
          Array.from(
            { length: Math.min(batch, sessions - i) },
            (_, j) =>
              BenchClient.connect(child.url, {
                token: tokens[(i + j) % principals],
                features: ["heartbeat", "ack", "list_jobs", "subscribe", "progress"],
              }),
          ),
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 2000));
    const after = await settled();
    return {
      sessions: clients.length,
      rawBefore: before.raw,
      rawAfter: after.raw,
      before: before.rss,
      after: after.rss,
      heapBefore: before.heap,
      heapAfter: after.heap,
    };
  } finally {
    inspector.close();
    await pool(clients, 100, (c) => c.close());
    await child.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function figure8(): Promise<void> {
  const sessions = scaled(1000, 20);
  const roundCount = scaled(3, 1);
  heading(
    `8. runtime RSS with ${sessions} idle sessions (child process "arcp serve"), ${roundCount} rounds`,
  );
  const rounds: IdleRound[] = [];
  for (let i = 0; i < roundCount; i++) rounds.push(await idleRound(sessions));
  const figure = "8. idle session memory";
  const per = (pick: (r: IdleRound) => number) => {
    const values = rounds.map(pick);
    const median = percentile(values.toSorted((a, b) => a - b), 50);
    return { value: fmt(median, 1), all: values.map((v) => fmt(v, 1)).join(", ") };
  };
  const mid = rounds.toSorted((a, b) => (a.after - a.before) - (b.after - b.before))[
    Math.floor(rounds.length / 2)
  ];
  report({ figure, metric: "server RSS before", value: fmt(mid.before / 1024, 1), unit: "MiB" });
  report({
    figure,
    metric: `server RSS with ${mid.sessions} idle sessions`,
    value: fmt(mid.after / 1024, 1),
    unit: "MiB",
    notes: "the median round's; both after full GCs",
  });
  const settled = per((r) => (r.after - r.before) / r.sessions);
  report({
    figure,
    metric: "RSS per idle session",
    value: settled.value,
    unit: "KiB",
    notes: `median of ${rounds.length} rounds (${settled.all}), a fresh server each; ` +
      `(after − before) / ${sessions}, VmRSS, each read after full GCs (through the inspector)`,
  });
  const raw = per((r) => (r.rawAfter - r.rawBefore) / r.sessions);
  report({
    figure,
    metric: "RSS per idle session, read without a GC",
    value: raw.value,
    unit: "KiB",
    notes: `same rounds (${raw.all}), read 2 s after they connected as figure 8 did ` +
      "before 2026-12-02: the handshakes' garbage counts or not as a GC happened to run",
  });
  const heap = per((r) => (r.heapAfter - r.heapBefore) / r.sessions / 1024);
  report({
    figure,
    metric: "JS heap per idle session",
    value: heap.value,
    unit: "KiB",
    notes: `same rounds (${heap.all}): V8's used heap after full GCs`,
  });
}

// ---- 9. memory per running job ---------------------------------------------

async function figure9(): Promise<void> {
  const n = scaled(16, 4);
  for (const b of [BOUNDARIES[0], BOUNDARIES[2]]) {
    heading(`9${b.key}. memory of ${n} running sleeper jobs: ${b.what}`);
    const { before, during, allRunning } = await probeMemory([
      "--sandbox",
      b.options.sandbox,
      "--jobs",
      String(n),
    ]);
    const total = totalKiB;
    const figure = `9${b.key}. memory per job (${b.label})`;
    const notes = `(with − without) ÷ ${n}, runtime in a fresh process${
      allRunning ? "" : " (not all sleepers started)"
    }`;
    report({
      figure,
      metric: "RSS per running sleeper job, runtime + sandbox processes",
      value: fmt((total(during) - total(before)) / n / 1024, 1),
      unit: "MiB",
      notes,
    });
    report({
      figure,
      metric: "runtime process RSS growth per running job",
      value: fmt((during.runtimeKiB - before.runtimeKiB) / n / 1024, 2),
      unit: "MiB",
      notes: `${fmt(before.runtimeKiB / 1024, 0)} → ${fmt(during.runtimeKiB / 1024, 0)} MiB`,
    });
    if (b.options.sandbox === "process") {
      const procs = stats(during.children);
      report({
        figure,
        metric: "RSS of one sandbox process, median",
        value: fmt(procs.p50 / 1024, 1),
        unit: "MiB",
        notes: `${procs.n} processes (${n} busy + the idle pool), max ${
          fmt(procs.max / 1024, 1)
        } MiB; ${before.children.length} idle before`,
      });
    }
  }
}

// ---- 10. the control plane beside hostile agents ----------------------------

/** Polls `/healthz` back to back with a short pause until stopped; returns every latency (ms). */
function pollHealth(http: string, gapMs: number): { stop(): Promise<number[]> } {
  let running = true;
  const samples: number[] = [];
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      const res = await fetch(`${http}/healthz`);
      await res.body?.cancel();
      samples.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, gapMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** `p`, or `undefined` once `ms` have passed; the timer never outlives the race. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A run's outcome in a few words: `result`, or the error code and cap. */
function outcome(run: JobRun | undefined): string {
  if (!run?.terminal) return "no terminal within the timeout";
  const p = run.terminal.payload;
  if (run.terminal.type === "job.result") return "result";
  return `${p?.code ?? run.terminal.type}${p?.details?.cap ? ` (cap ${p.details.cap})` : ""}`;
}

async function figure10(): Promise<void> {
  const gap = 10;
  const cases = [
    { name: "honest ticker alone", agent: undefined, input: {} },
    { name: "console.log flood", agent: "console-flood", input: {} },
    { name: "one 30 MiB event", agent: "huge-event", input: { mb: 30 } },
    { name: "memory bomb, ArrayBuffers", agent: "memory-bomb", input: { kind: "buffer" } },
    { name: "memory bomb, wasm memory", agent: "memory-bomb", input: { kind: "wasm" } },
  ];
  heading(
    `10. /healthz every ${gap} ms while a hostile agent of alice runs beside bob's ticker ` +
      `(warm pool, memoryMb 384, hostHeapMb 128)`,
  );
  // The containment fixtures, with the limits the containment tests use: the ceiling is reached
  // in about a second, so the memory bombs end by the runtime's hand, not by the machine's.
  await using server = await startBenchServer({
    agentsDir: `${ROOT}/tests/fixtures/containment`,
    hostHeapMb: 128,
    memoryMb: 384,
  });
  const bob = await BenchClient.connect(server.url, { token: "bob-token" });
  const alice = await BenchClient.connect(server.url, { token: "alice-token" });
  await bob.run("ticker", { count: 5, interval_ms: 0 }); // warm-up
  const all: number[] = [];
  // Each hostile job ends within a second or so: several rounds give the percentiles samples.
  const rounds = scaled(4, 1);
  for (const c of cases) {
    const samples: number[] = [];
    const honest: string[] = [];
    const hostileEnds: string[] = [];
    const hostileSecs: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const health = pollHealth(server.http, gap);
      const ticker = bob.submit("ticker", { count: 30, interval_ms: 20 });
      const hostile = c.agent ? alice.submit(c.agent, c.input) : undefined;
      const [hostileRun, tickerRun] = await Promise.all([
        hostile ? within(hostile.done, 60_000) : undefined,
        within(ticker.done, 60_000),
      ]);
      samples.push(...await health.stop());
      honest.push(
        tickerRun?.terminal?.type === "job.result"
          ? `${tickerRun.terminal.payload.result?.ticks} ticks`
          : outcome(tickerRun),
      );
      if (hostile) {
        hostileEnds.push(outcome(hostileRun));
        if (hostileRun) hostileSecs.push((hostileRun.endedAt! - hostileRun.submittedAt) / 1000);
      }
    }
    // Outcomes as counts ("result ×4"), so a round that went differently stands out.
    const tally = (xs: string[]) =>
      [...new Set(xs)].map((x) => `${x} ×${xs.filter((y) => y === x).length}`).join(", ");
    const [lo, hi] = [Math.min(...hostileSecs), Math.max(...hostileSecs)];
    const span = hostileSecs.length === 0
      ? ""
      : lo === hi
      ? ` in ${fmt(lo, 1)} s`
      : ` in ${fmt(lo, 1)}–${fmt(hi, 1)} s`;
    const notes = `${samples.length} polls over ${rounds} rounds; bob's ticker: ${tally(honest)}${
      c.agent ? `; ${c.agent}: ${tally(hostileEnds)}${span}` : ""
    }`;
    if (c.agent) all.push(...samples);
    const s = stats(samples);
    report({
      figure: `10. /healthz: ${c.name}`,
      metric: "/healthz p50 / p99 / max",
      value: `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.max)}`,
      unit: "ms",
      notes,
    });
  }
  const s = stats(all);
  report({
    figure: "10. /healthz: all hostile cases",
    metric: "/healthz p50 / p99 / max",
    value: `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.max)}`,
    unit: "ms",
    notes: `${s.n} polls; ${all.filter((v) => v > 100).length} over 100 ms`,
  });
  await alice.close();
  await bob.close();
}

// ---- before / after ---------------------------------------------------------

/**
 * The figures of the design before the process per job (one sandbox host
 * process per principal, all of its jobs' workers inside it), from the
 * README and RESULTS.md at commit 59964bf, same machine, 2026-11-23.
 */
const BEFORE: ReadonlyArray<{ what: string; before: string; after: Array<[string, string]> }> = [
  {
    what: "echo submit→result p50 / p99, process sandbox, back to back",
    before: "18.5 / 38.6 ms",
    after: [["1a. echo (warm pool)", "submit→result p50"], [
      "1a. echo (warm pool)",
      "submit→result p99",
    ]],
  },
  {
    what: "echo submit→result p50 / p99, in-process workers",
    before: "18.2 / 27.4 ms",
    after: [["1c. echo (worker)", "submit→result p50"], ["1c. echo (worker)", "submit→result p99"]],
  },
  {
    what: "process sandbox ÷ in-process workers, echo p50 (same run)",
    before: "1.02×",
    after: [["1e. ratios (same run)", "warm pool ÷ worker, p50"]],
  },
  {
    what: "job start, nothing warm (before: a principal's first job spawns its host)",
    before: "42.8 ms",
    after: [["1b. echo (cold process)", "submit→result p50"]],
  },
  {
    what: "job start, warm (before: warm host; now: pool refilled, jobs 300 ms apart)",
    before: "17.6 ms",
    after: [[
      "4a. job start (process)",
      "echo submit→result, median: warm pool (2), jobs 300 ms apart",
    ]],
  },
  {
    what: "job start, in-process worker, jobs apart",
    before: "19.6 ms",
    after: [[
      "4c. job start (worker)",
      "echo submit→result, median: in-process worker, jobs 300 ms apart",
    ]],
  },
  {
    what: "echo jobs/s, 4 in flight, 1 session (process sandbox)",
    before: "70 jobs/s",
    after: [["2a. job throughput (warm pool)", "echo jobs/s, 1 session"]],
  },
  {
    what: "echo jobs/s, 4 in flight, 1 session (in-process workers)",
    before: "—",
    after: [["2c. job throughput (worker)", "echo jobs/s, 1 session"]],
  },
  {
    what: "ticker events/s, one job, end to end (process sandbox)",
    before: "16,645 events/s",
    after: [["3a. ticker events/s (warm pool)", "events/s, one ticker job, end to end (durable)"]],
  },
  {
    what: "ceiling: raw new Worker + round trip, p50",
    before: "10.2 ms",
    after: [["1d. ceilings", "raw new Worker + message round trip, p50"]],
  },
  {
    what: "ceiling: raw deno run spawn → ready, p50",
    before: "—",
    after: [["1d. ceilings", "raw deno run spawn → ready, p50"]],
  },
  {
    what: "ctx.fs.readText, process sandbox",
    before: "607 µs",
    after: [["5. lease-checked I/O (process)", "ctx.fs.readText"]],
  },
];

/**
 * The before/after table: each figure of the old design beside this run's,
 * found by figure and metric; a figure this run did not make shows `—`.
 *
 * @param rows this run's figures
 * @returns Markdown
 */
function beforeAfter(rows: readonly ResultRow[]): string {
  const lookup = (figure: string, metric: string) => {
    const row = rows.find((r) => r.figure === figure && r.metric === metric);
    return row ? { value: row.value, unit: row.unit } : undefined;
  };
  const table: ResultRow[] = BEFORE.map((b) => {
    const found = b.after.map(([f, m]) => lookup(f, m));
    const now = found.every((x) => x)
      ? `${found.map((x) => x!.value).join(" / ")} ${found[0]!.unit}`.trim()
      : "—";
    return { figure: b.what, metric: b.before, value: now, unit: "" };
  });
  return [
    "| figure | before (host per principal) | this run (process per job) |",
    "| --- | ---: | ---: |",
    ...table.map((r) => `| ${r.figure} | ${r.metric} | ${r.value} |`),
  ].join("\n");
}

// ---- main -----------------------------------------------------------------

/**
 * Marks where the generated figures end in RESULTS.md: what follows it was
 * measured and written by hand (A/B pairs, what was tried and not kept)
 * and must survive a new run.
 */
const HISTORY_MARK = "<!-- Generated above by `deno task bench`; measured by hand below. -->";

/** The run's figures, followed by the hand-written history of the file it replaces. */
function withHistory(doc: string, previous: string): string {
  let history = "";
  const at = previous.indexOf(HISTORY_MARK);
  if (at >= 0) history = previous.slice(at + HISTORY_MARK.length).trimStart();
  else {
    // A file from before the mark: its history starts after the generated sections.
    const start = previous.search(/^## (?!Before and after|Every figure of this run)/m);
    if (start >= 0) history = previous.slice(start);
  }
  return `${doc}\n${HISTORY_MARK}\n\n${history}`;
}

/** A file's text, or "" when there is none yet. */
async function readIfAny(url: URL): Promise<string> {
  try {
    return await Deno.readTextFile(url);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "";
    throw err;
  }
}

const FIGURES: Array<[number, () => Promise<void>]> = [
  [1, figure1],
  [2, figure2],
  [3, figure3],
  [4, figure4],
  [5, figure5],
  [6, figure6],
  [7, figure7],
  [8, figure8],
  [9, figure9],
  [10, figure10],
  [11, figure11],
  [12, figure12],
  [13, figure13],
  [14, figure14],
  [15, figure15],
  [16, figure16],
];

if (import.meta.main) {
  const facts = machineFacts();
  const factLine = `${facts.cores} cores${facts.cpu ? ` (${facts.cpu})` : ""}, ${facts.os}${
    facts.memMiB ? `, ${fmt(facts.memMiB / 1024, 1)} GiB RAM` : ""
  }, Deno ${facts.deno} (V8 ${facts.v8})${
    facts.load ? `, load average ${facts.load} at start` : ""
  }`;
  console.log(`ARCP runtime figures — ${factLine}${SCALE !== 1 ? `, scale ${SCALE}` : ""}`);
  const started = performance.now();
  const failed: number[] = [];
  for (const [n, fn] of FIGURES) {
    if (ONLY && !ONLY.has(n)) continue;
    const t0 = performance.now();
    try {
      await fn();
      console.log(`  (figure ${n} took ${fmt((performance.now() - t0) / 1000, 0)} s)`);
    } catch (err) {
      // One broken figure must not hide the others: report it and go on.
      failed.push(n);
      console.error(`figure ${n} failed: ${(err as Error)?.stack ?? err}`);
      report({ figure: `${n}.`, metric: "FAILED", value: "—", unit: "", notes: String(err) });
    }
  }
  const took = (performance.now() - started) / 1000;
  const table = markdownTable(rows);
  const doc = [
    "# Benchmark results",
    "",
    `Machine: ${factLine}. Generated by \`deno task bench\` on ${
      new Date().toISOString().slice(0, 10)
    }${SCALE !== 1 ? ` at scale ${SCALE}` : ""}; the figures took ${fmt(took, 0)} s.`,
    "One run: the load average at its start is above. On a shared or loaded machine read the",
    "figures as orders of magnitude and compare ratios within the run rather than absolute",
    "figures across runs.",
    "",
    "## Before and after the process per job",
    "",
    beforeAfter(rows),
    "",
    "## Every figure of this run",
    "",
    table,
    "",
  ].join("\n");
  console.log(`\n${doc}`);
  if (failed.length > 0) {
    console.log(`figures ${failed.join(", ")} failed: bench/RESULTS.md left as it was`);
    Deno.exitCode = 1;
  } else if (!flags["no-write"] && !ONLY && SCALE === 1) {
    const results = new URL("./RESULTS.md", import.meta.url);
    await Deno.writeTextFile(results, withHistory(doc, await readIfAny(results)));
    // Keep the file as `deno fmt` wants it (aligned columns), so fmt checks stay clean.
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--quiet", results.pathname],
      stdout: "null",
    }).output();
    console.log("wrote bench/RESULTS.md");
  } else if (!flags["no-write"]) {
    console.log("partial run (--only or --scale): bench/RESULTS.md left as it was");
  }
}
