/**
 * Figure 11: what a sandboxed job costs once worker start is off its path
 * (issue 12), each beside a ceiling measured in the same run: a fresh
 * worker per job at a steady rate and back to back, reused workers, shared
 * workers' memory, and load held by many sessions. The runtime runs as
 * `arcp serve` in a child process, so the load generator in this process
 * does not share its event loop.
 *
 * @module
 */
import { heading, report, scaled } from "./_report.ts";
import {
  BenchClient,
  type ChildServerLike,
  connectSpread,
  fmt,
  type JobRun,
  percentile,
  principalToken,
  rawWorkerRoundTrip,
  ROOT,
  spawnBenchServe,
  stats,
} from "./_util.ts";
import { probeMemory, totalKiB } from "./memory_probe.ts";

const FIG = "11";
const ms = (n: number) => fmt(n, n < 10 ? 2 : 1);
const settle = (t: number) => new Promise((r) => setTimeout(r, t));

/** Submit→result times (ms) of finished runs. */
const latencies = (runs: JobRun[]) => runs.map((r) => r.endedAt! - r.submittedAt);

/** Runs `n` jobs one after another; returns their runs and the wall time (ms). */
async function sequential(
  client: BenchClient,
  agent: string,
  n: number,
): Promise<{ runs: JobRun[]; wallMs: number }> {
  const runs: JobRun[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) runs.push(await client.run(agent, { i }));
  return { runs, wallMs: performance.now() - t0 };
}

/**
 * Submits `count` jobs one every 50 ms (20 jobs/s), after 5 run one after
 * another, and waits for them all.
 *
 * @returns the paced jobs, in order
 */
async function steadyRate(client: BenchClient, agent: string, count: number): Promise<JobRun[]> {
  await sequential(client, agent, 5);
  const runs: JobRun[] = [];
  for (let i = 0; i < count; i++) {
    runs.push(client.submit(agent, { i }));
    await settle(50);
  }
  await Promise.all(runs.map((r) => r.done));
  return runs;
}

/** The ceilings: a raw `new Worker` round trip, one after another. */
async function ceilings(n: number): Promise<{ p50: number; perSec: number }> {
  const samples: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) samples.push(await rawWorkerRoundTrip());
  const perSec = n / ((performance.now() - t0) / 1000);
  return { p50: stats(samples).p50, perSec };
}

async function freshFigures(server: ChildServerLike): Promise<void> {
  heading(`${FIG}a. ceilings: raw new Worker round trips, one after another`);
  const raw = await ceilings(scaled(40, 10));
  report({
    figure: `${FIG}a. ceilings`,
    metric: "raw new Worker + message round trip, p50",
    value: ms(raw.p50),
    unit: "ms",
  });
  report({
    figure: `${FIG}a. ceilings`,
    metric: "raw worker spawn rate, one after another",
    value: fmt(raw.perSec, 1),
    unit: "workers/s",
  });

  heading(`${FIG}b. fresh isolation (default): echo at a steady 20 jobs/s`);
  const client = await BenchClient.connect(server.url);
  const count = scaled(1200, 120);
  const youngEnd = scaled(300, 40);
  const steadyCount = scaled(300, 40);
  // A runtime serving a steady rate has served many jobs. V8 compiles
  // optimized code for a function only after several hundred calls whose
  // feedback has settled; one that runs once a job gets there after some
  // 400–800 jobs (bench/RESULTS.md, "A young runtime runs its per-job code
  // in baseline tiers"). The first jobs measure a young runtime, the last
  // ones the steady rate.
  const paced = await steadyRate(client, "echo-fresh", count);
  const young = stats(latencies(paced.slice(20, youngEnd)));
  const steady = stats(latencies(paced.slice(count - steadyCount)));
  const notes = `the last ${steadyCount} of ${count} jobs, one every 50 ms (after a minute at ` +
    `20 jobs/s, as a runtime serving that rate runs); a warm worker waiting`;
  report({
    figure: `${FIG}b. fresh, 20 jobs/s`,
    metric: "submit→result p50",
    value: ms(steady.p50),
    unit: "ms",
    notes,
  });
  report({
    figure: `${FIG}b. fresh, 20 jobs/s`,
    metric: "submit→result p99",
    value: ms(steady.p99),
    unit: "ms",
    notes,
  });
  report({
    figure: `${FIG}b. fresh, 20 jobs/s`,
    metric: "a young runtime: submit→result p50 / p99",
    value: `${ms(young.p50)} / ${ms(young.p99)}`,
    unit: "ms",
    notes: `jobs 21–${youngEnd} of the same run: V8 still runs the per-job code in baseline tiers`,
  });

  heading(`${FIG}c. fresh isolation: echo back to back`);
  const seq = await sequential(client, "echo-fresh", scaled(200, 30));
  const rate = seq.runs.length / (seq.wallMs / 1000);
  report({
    figure: `${FIG}c. fresh, back to back`,
    metric: "sequential jobs/s",
    value: fmt(rate, 1),
    unit: "jobs/s",
    notes: `${fmt(rate / raw.perSec, 2)}× the raw worker spawn rate (${fmt(raw.perSec, 1)}/s)`,
  });
  const q = stats(latencies(seq.runs));
  report({
    figure: `${FIG}c. fresh, back to back`,
    metric: "submit→result p50 / p99",
    value: `${ms(q.p50)} / ${ms(q.p99)}`,
    unit: "ms",
  });

  // After 11c, which a pause in fresh demand would change (the pool trims by
  // demand). The same pacing on a worker that served the jobs before: what the rate
  // costs by itself (every thread on the path sleeps between jobs), apart
  // from what a fresh worker and its job's own record commit add.
  const reusedCount = scaled(200, 40);
  const r = stats(latencies((await steadyRate(client, "echo-reused", reusedCount)).slice(20)));
  report({
    figure: `${FIG}b. fresh, 20 jobs/s`,
    metric: "ceiling: a reused echo at the same rate, p50 / p99",
    value: `${ms(r.p50)} / ${ms(r.p99)}`,
    unit: "ms",
    notes: `${reusedCount - 20} jobs after 20 warm-up, one every 50 ms, one reused worker`,
  });
  await client.close();
}

/**
 * What one KV commit of a job record's size takes, one after another (ms):
 * a job's record is committed before `job.accepted` and its terminal before
 * `job.result`, so no job takes less than two of these.
 */
async function rawCommitLatency(n: number): Promise<number[]> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_bench_commit_" });
  const kv = await Deno.openKv(`${dir}/raw.kv`);
  const value = "x".repeat(1200);
  const samples: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await kv.atomic().set(["job", i], value).set(["session", "s"], i).commit();
      samples.push(performance.now() - t0);
    }
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
  return samples;
}

/** Round trips of a small frame to a bare `Deno.serve` WebSocket echo on loopback, one after another (ms). */
async function rawWsRoundTrips(n: number): Promise<number[]> {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (m) => socket.send(m.data);
    return response;
  });
  const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const samples: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const { promise, resolve } = Promise.withResolvers<void>();
      ws.onmessage = () => resolve();
      const t0 = performance.now();
      ws.send(`{"type":"job.submit","i":${i}}`);
      await promise;
      samples.push(performance.now() - t0);
    }
  } finally {
    ws.close();
    await server.shutdown();
  }
  return samples;
}

async function reuseFigures(server: ChildServerLike): Promise<void> {
  heading(`${FIG}d. reuse: echo-reused back to back, 1 and 8 sessions`);
  const commit = stats(await rawCommitLatency(scaled(500, 50))).p50;
  const rtt = stats(await rawWsRoundTrips(scaled(500, 50))).p50;
  const floor = commit + rtt;
  report({
    figure: `${FIG}d. reuse`,
    metric: "floor: 1 raw KV commit + a raw WebSocket round trip, one after another",
    value: `${ms(floor)} ms → ${fmt(1000 / floor, 0)}`,
    unit: "jobs/s",
    notes: `commit p50 ${ms(commit)} ms (a 1.2 KB record and a session record); ` +
      `loopback WebSocket echo p50 ${ms(rtt)} ms; a short job's record, held for it, ` +
      `commits with its terminal, before the client hears of either`,
  });
  const one = await BenchClient.connect(server.url);
  await sequential(one, "echo-reused", 50);
  const seq = await sequential(one, "echo-reused", scaled(2000, 100));
  const s = stats(latencies(seq.runs));
  report({
    figure: `${FIG}d. reuse`,
    metric: "echo jobs/s, 1 session, one after another",
    value: fmt(seq.runs.length / (seq.wallMs / 1000), 0),
    unit: "jobs/s",
  });
  report({
    figure: `${FIG}d. reuse`,
    metric: "submit→result p50 / p99",
    value: `${ms(s.p50)} / ${ms(s.p99)}`,
    unit: "ms",
  });
  await one.close();
  const clients = await connectSpread(server.url, 8);
  await Promise.all(clients.map((c) => sequential(c, "echo-reused", 20)));
  const per = scaled(500, 30);
  const t0 = performance.now();
  await Promise.all(clients.map((c) => sequential(c, "echo-reused", per)));
  const wall = performance.now() - t0;
  report({
    figure: `${FIG}d. reuse`,
    metric: "echo jobs/s, 8 sessions (4 principals), each one after another",
    value: fmt((8 * per) / (wall / 1000), 0),
    unit: "jobs/s",
  });
  await Promise.all(clients.map((c) => c.close()));
}

/** Runs bench/memory_probe.ts in a fresh process and reports per-job memory. */
async function sharedMemoryFigure(): Promise<void> {
  const n = scaled(1000, 100);
  heading(`${FIG}e. concurrency: memory of ${n} running sleeper-shared jobs (1,000 per worker)`);
  const { before, during, allRunning } = await probeMemory([
    "--agent",
    "sleeper-shared",
    "--agents",
    `${ROOT}/bench/agents`,
    "--jobs",
    String(n),
  ]);
  const total = totalKiB;
  report({
    figure: `${FIG}e. concurrency`,
    metric: "RSS per additional running sleeper job, runtime + sandbox processes",
    value: fmt((total(during) - total(before)) / n / 1024, 3),
    unit: "MiB",
    notes: `(with − without) ÷ ${n}; ${fmt(total(before) / 1024, 0)} → ${
      fmt(total(during) / 1024, 0)
    } MiB${allRunning ? "" : " (not all sleepers started)"}`,
  });
}

/** 5,000 shared sleepers over 10 principals, with the control plane timed throughout. */
async function manySleepersFigure(server: ChildServerLike, http: string): Promise<void> {
  const principals = 10;
  const perPrincipal = scaled(500, 20);
  heading(
    `${FIG}f. concurrency: ${
      principals * perPrincipal
    } sleeper-shared jobs over ${principals} principals`,
  );
  const clients = await Promise.all(
    Array.from({ length: principals }, (_, i) =>
      BenchClient.connect(server.url, {
        token: principalToken(i),
        features: ["progress", "heartbeat"],
      })),
  );
  // Sampled from a worker: this thread's event loop is busy with the load.
  const sampler = new Worker(new URL("./_control_sampler.ts", import.meta.url), { type: "module" });
  const next = () =>
    new Promise<{ pings: number[]; health: number[] }>((resolve) => {
      sampler.onmessage = (e) => resolve(e.data);
    });
  const ready = next();
  sampler.postMessage({ url: server.url, http, token: principalToken(principals) });
  await ready;
  const runs = clients.flatMap((c) =>
    Array.from({ length: perPrincipal }, () => c.submit("sleeper-shared", { ms: 600_000 }))
  );
  const deadline = performance.now() + 180_000;
  while (
    runs.some((r) => r.firstEventAt === undefined && !r.terminal) && performance.now() < deadline
  ) {
    await settle(100);
  }
  const running = runs.filter((r) => r.firstEventAt !== undefined && !r.terminal).length;
  await settle(2000);
  const samples = next();
  sampler.postMessage("stop");
  const { pings, health } = await samples;
  sampler.terminate();
  const p = stats(pings);
  const h = stats(health);
  report({
    figure: `${FIG}f. concurrency`,
    metric: "sleeper jobs running at once",
    value: String(running),
    unit: "jobs",
    notes: `of ${runs.length} submitted; ${runs.filter((r) => r.terminal).length} ended early`,
  });
  report({
    figure: `${FIG}f. concurrency`,
    metric: "session.ping round trip p50 / p99 / max, while they start and run",
    value: `${ms(p.p50)} / ${ms(p.p99)} / ${ms(p.max)}`,
    unit: "ms",
    notes: `${p.n} pings, sampled from a worker of the bench process`,
  });
  report({
    figure: `${FIG}f. concurrency`,
    metric: "/healthz p50 / p99 / max",
    value: `${ms(h.p50)} / ${ms(h.p99)} / ${ms(h.max)}`,
    unit: "ms",
    notes: `${h.n} polls`,
  });
  await Promise.all(clients.map((c) => c.close()));
}

/**
 * How long a load row's first submits may be starting its agents' workers
 * (ms; a row's period when that is longer: every session submits once in it).
 */
const WARM_MS = 5000;

/** N sessions each submitting one job every `everyMs` for `seconds`. */
async function loadHeld(
  url: string,
  isolation: string,
  agent: string,
  sessions: number,
  everyMs: number,
  seconds: number,
): Promise<void> {
  const period = everyMs === 1000 ? "s" : `${everyMs / 1000} s`;
  const label = `${fmt(sessions, 0)} sessions × 1 echo/${period}, ${isolation}`;
  const clients: BenchClient[] = [];
  let refused = 0;
  for (let i = 0; i < sessions; i += 50) {
    const batch = await Promise.allSettled(
      Array.from({ length: Math.min(50, sessions - i) }, (_, k) =>
        BenchClient.connect(url, {
          token: principalToken((i + k) % 10),
          features: ["progress", "heartbeat"],
        })),
    );
    for (const b of batch) {
      if (b.status === "fulfilled") clients.push(b.value);
      else refused++;
    }
  }
  const runs: JobRun[] = [];
  /** Each principal's runs, in submit order: when its first job came, and when one first ended. */
  const byPrincipal = new Map<number, JobRun[]>();
  const until = performance.now() + seconds * 1000;
  await Promise.all(clients.map(async (c, i) => {
    // Spread the sessions' submits evenly over one period.
    await settle((i / clients.length) * everyMs);
    while (performance.now() < until) {
      const run = c.submit(agent, { i });
      runs.push(run);
      const mine = byPrincipal.get(i % 10) ?? [];
      mine.push(run);
      byPrincipal.set(i % 10, mine);
      await settle(everyMs);
    }
  }));
  await Promise.race([Promise.all(runs.map((r) => r.done)), settle(60_000)]);
  const done = runs.filter((r) => r.terminal?.type === "job.result");
  const errors = runs.filter((r) => r.terminal?.type === "job.error");
  const codes = new Map<string, number>();
  for (const r of errors) {
    const code = `${r.terminal!.payload.code}${
      r.terminal!.payload.details?.cap ? `:${r.terminal!.payload.details.cap}` : ""
    }`;
    codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  const dropped = runs.filter((r) => r.terminal?.type === "closed").length;
  const unfinished = runs.filter((r) => !r.terminal).length;
  const s = stats(latencies(done));
  // The sessions' first submits also start their agents' workers: the jobs after them show
  // whether a tail is that start or the load itself.
  const first = Math.min(...runs.map((r) => r.submittedAt));
  const warm = Math.max(WARM_MS, everyMs);
  const later = stats(latencies(done.filter((r) => r.submittedAt - first >= warm)));
  const early = stats(latencies(done.filter((r) => r.submittedAt - first < warm)));
  // A principal's first result after its first submit: its key's first worker start, cold.
  const firstResults = [...byPrincipal.values()].map((mine) =>
    Math.min(...mine.map((r) => r.endedAt ?? Infinity)) - mine[0].submittedAt
  ).sort((a, b) => a - b);
  report({
    figure: `${FIG}g. load held`,
    metric: `${label}: jobs done / submitted`,
    value: `${done.length} / ${runs.length}`,
    unit: "jobs",
    notes: `errors ${[...codes].map(([c, n]) => `${c} ×${n}`).join(", ") || "none"}; ` +
      `${dropped} lost with a dropped session, ${unfinished} unfinished, ${refused} hellos refused`,
  });
  report({
    figure: `${FIG}g. load held`,
    metric: `${label}: submit→result p50 / p99`,
    value: `${ms(s.p50)} / ${ms(s.p99)}`,
    unit: "ms",
    notes: `${fmt(done.length / seconds, 1)} jobs/s done; submitted after the first ` +
      `${warm / 1000} s: p50 / p99 ${ms(later.p50)} / ${ms(later.p99)} ms; in them ` +
      `${ms(early.p50)} / ${ms(early.p99)} ms; a principal's first result after its first ` +
      `submit: median ${ms(percentile(firstResults, 50))}, last ${ms(firstResults.at(-1)!)} ms`,
  });
  await Promise.all(clients.map((c) => c.close()));
}

/** The `serve` flags of figure 11's server: the bench agents, and caps its load rows stay within. */
export const FIGURE11_SERVE_FLAGS: readonly string[] = [
  "--agents",
  `${ROOT}/bench/agents`,
  "--principal-max-jobs",
  "1000",
  "--principal-max-sessions",
  "400",
];

/**
 * Figure 11.
 *
 * @returns resolves once every row is reported
 */
export async function figure11(): Promise<void> {
  // `ARCP_FIG11_ONLY=fresh,reuse` runs just those parts (quick A/B runs of the per-job path).
  const only = Deno.env.get("ARCP_FIG11_ONLY")?.split(",");
  const part = (name: string) => !only || only.includes(name);
  // `load` runs every load row; `load-reuse` (or `load-fresh`, `load-many`, `load-loose`) one.
  const loadRows = ["fresh", "reuse", "many", "loose"].filter((row) =>
    part("load") || only?.includes(`load-${row}`)
  );
  const options = [...FIGURE11_SERVE_FLAGS];
  const server = await spawnBenchServe(options);
  try {
    if (part("fresh")) await freshFigures(server);
    if (part("reuse")) await reuseFigures(server);
    if (part("memory")) await sharedMemoryFigure();
    if (part("sleepers")) {
      await manySleepersFigure(server, server.url.replace(/^ws/, "http").replace(/\/arcp$/, ""));
    }
    const seconds = scaled(30, 5);
    if (loadRows.length) {
      heading(`${FIG}g. load held: sessions × one echo per period, ${seconds} s each`);
    }
    if (loadRows.includes("fresh")) {
      await loadHeld(server.url, "fresh", "echo-fresh", scaled(100, 10), 1000, seconds);
    }
    if (loadRows.includes("reuse")) {
      await loadHeld(server.url, "reuse", "echo-reused", scaled(500, 20), 1000, seconds);
    }
    if (loadRows.includes("many")) {
      await loadHeld(
        server.url,
        "reuse",
        "echo-reused",
        scaled(2000, 40),
        20_000,
        Math.max(seconds, 40),
      );
    }
  } finally {
    await server.stop();
  }
  if (!loadRows.includes("loose")) return;
  // The default budget (250 ms) refuses a fresh job expected to wait longer for a worker; the
  // former default of a second lets larger bursts pass and turns sustained overload into latency.
  const loose = await spawnBenchServe([...options, "--sandbox-queue-ms", "1000"]);
  try {
    await loadHeld(
      loose.url,
      "fresh, --sandbox-queue-ms 1000",
      "echo-fresh",
      scaled(100, 10),
      1000,
      scaled(30, 5),
    );
  } finally {
    await loose.stop();
  }
}
