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
import { parseArgs } from "parse-args";
import {
  agentWorkerRoundTrip,
  BenchClient,
  fmt,
  type JobRun,
  machineFacts,
  markdownTable,
  pool,
  rawWorkerRoundTrip,
  type ResultRow,
  ROOT,
  rssKiB,
  startBenchServer,
  startChildServer,
  stats,
  waitIdle,
} from "./_util.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    only: { type: "string" },
    scale: { type: "string" },
    "no-write": { type: "boolean" },
  },
  strict: true,
});
const SCALE = Number(flags.scale ?? 1);
const ONLY = flags.only
  ? new Set(String(flags.only).split(",").map((s: string) => Number(s.trim())))
  : undefined;

/**
 * A count scaled by `--scale`, never below `min`.
 *
 * @param n full-size count
 * @param min smallest count
 * @returns the count to use
 */
function scaled(n: number, min = 1): number {
  return Math.max(min, Math.round(n * SCALE));
}

const rows: ResultRow[] = [];

function report(row: ResultRow): void {
  rows.push(row);
  console.log(
    `  ${row.metric.padEnd(60)} ${row.value.padStart(12)} ${row.unit}${
      row.notes ? `  (${row.notes})` : ""
    }`,
  );
}

function heading(text: string): void {
  console.log(`\n== ${text}`);
}

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

// ---- 1. submit→result latency ------------------------------------------

async function figure1(): Promise<void> {
  const n = scaled(1000, 20);
  for (const sandbox of ["process", "worker"] as const) {
    heading(
      `1. echo submit→result latency, ${n} sequential jobs, one session, sandbox "${sandbox}"`,
    );
    await using server = await startBenchServer({ sandbox });
    const client = await BenchClient.connect(server.url);
    await sequentialEcho(client, 20); // warm-up: host spawn, module compile, JIT
    const s = stats(await sequentialEcho(client, n));
    const figure = `1. echo latency (${sandbox})`;
    const notes = `${n} jobs sequential on 1 session, after 20 warm-up jobs`;
    report({
      figure,
      metric: `submit→result p50, sandbox ${sandbox}`,
      value: ms(s.p50),
      unit: "ms",
      notes,
    });
    report({
      figure,
      metric: `submit→result p99, sandbox ${sandbox}`,
      value: ms(s.p99),
      unit: "ms",
      notes,
    });
    report({
      figure,
      metric: `submit→result mean, sandbox ${sandbox}`,
      value: ms(s.mean),
      unit: "ms",
    });
    await client.close();
  }
}

// ---- 2. jobs/s -----------------------------------------------------------

async function figure2(): Promise<void> {
  const total = scaled(400, 16);
  const depth = 4;
  heading(`2. echo throughput, ${total} jobs per run, ${depth} in flight per session`);
  await using server = await startBenchServer();
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
      figure: "2. job throughput",
      metric: `echo jobs/s, ${sessions} session${sessions > 1 ? "s" : ""}`,
      value: fmt(jobs / (elapsed / 1000), 0),
      unit: "jobs/s",
      notes: `${jobs} jobs, ${depth} in flight per session, sandbox process`,
    });
    await Promise.all(clients.map((c) => c.close()));
  }
}

// ---- 3. events/s of one ticker -------------------------------------------

async function figure3(): Promise<void> {
  const count = scaled(20_000, 500);
  heading(`3. one ticker job, count ${count}, interval_ms 0`);
  await using server = await startBenchServer();
  const client = await BenchClient.connect(server.url);
  await client.run("ticker", { count: 100, interval_ms: 0 }); // warm-up
  const run = await client.run("ticker", { count, interval_ms: 0 });
  const secs = (run.endedAt! - run.submittedAt) / 1000;
  const figure = "3. ticker events/s";
  report({
    figure,
    metric: "events/s, one ticker job, end to end",
    value: fmt(run.events / secs, 0),
    unit: "events/s",
    notes: `${run.events} job.event envelopes received in ${fmt(secs)} s (submit→result)`,
  });
  await client.close();
}

// ---- 4. worker / job start cost -------------------------------------------

async function figure4(): Promise<void> {
  const n = scaled(40, 5);
  heading(`4a. raw worker start, permissions "none", ${n} samples each`);
  await rawWorkerRoundTrip();
  await agentWorkerRoundTrip();
  const raw = stats(await pool(Array.from({ length: n }), 1, rawWorkerRoundTrip));
  const agent = stats(await pool(Array.from({ length: n }), 1, agentWorkerRoundTrip));
  report({
    figure: "4a. worker start",
    metric: "new Worker + message round trip, p50",
    value: ms(raw.p50),
    unit: "ms",
    notes: `inline echo module, ${n} samples`,
  });
  report({
    figure: "4a. worker start",
    metric: "new Worker + sandbox bootstrap + echo agent result, p50",
    value: ms(agent.p50),
    unit: "ms",
    notes: `entry module as the runtime builds it, ${n} samples`,
  });

  const jobs = scaled(20, 5);
  const setups = [
    {
      label: "4b",
      what: "warm pool (2), jobs 300 ms apart",
      sandbox: "process",
      pool: 2,
      gap: 300,
    },
    {
      label: "4b",
      what: "cold process per job (warmPool 0)",
      sandbox: "process",
      pool: 0,
      gap: 300,
    },
    { label: "4b", what: "warm pool (2), jobs back to back", sandbox: "process", pool: 2, gap: 0 },
    { label: "4c", what: "in-process worker", sandbox: "worker", pool: 0, gap: 300 },
  ] as const;
  for (const setup of setups) {
    heading(`${setup.label}. job start cost, ${setup.what}: ${jobs} echo jobs`);
    await using server = await startBenchServer({
      sandbox: setup.sandbox,
      warmPool: setup.pool,
    });
    const c = await BenchClient.connect(server.url);
    // Warm-up: module compile and JIT in the runtime, so the figure is the sandbox's own cost.
    await sequentialEcho(c, 5);
    const times: number[] = [];
    for (let i = 0; i < jobs; i++) {
      await new Promise((r) => setTimeout(r, setup.gap));
      times.push(...await sequentialEcho(c, 1));
    }
    await c.close();
    const st = stats(times);
    report({
      figure: `${setup.label}. job start (${setup.sandbox})`,
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

// ---- 7. resume replay -----------------------------------------------------

async function figure7(): Promise<void> {
  const count = scaled(10_000, 500);
  heading(`7. resume replay of a detached session's ${count}-event ticker`);
  await using server = await startBenchServer();
  const first = await BenchClient.connect(server.url);
  await first.run("ticker", { count: 50, interval_ms: 0 }); // warm-up
  const baseSeq = first.lastSeq;
  const run = first.submit("ticker", { count, interval_ms: 0 });
  // Detach as soon as the submit is answered; the job runs on and its events are logged.
  while (run.acceptedAt === undefined && !run.terminal) await new Promise((r) => setTimeout(r, 1));
  const { sessionId, resumeToken } = first;
  await first.close();
  await waitIdle(server.http);

  let last = 0;
  let replayed = 0;
  const { promise: caughtUp, resolve } = Promise.withResolvers<void>();
  const helloAt = performance.now();
  const resumed = await BenchClient.connect(server.url, {
    resume: { session_id: sessionId, resume_token: resumeToken, last_event_seq: 0 },
    onEnvelope: (env, at) => {
      if (env.event_seq === undefined) return;
      replayed++;
      last = at;
      if (env.type === "job.result" && env.trace_id === run.traceId) resolve();
    },
  });
  await caughtUp;
  const figure = "7. resume replay";
  const fromWelcome = last - resumed.welcomedAt;
  const notes =
    `${replayed} envelopes from seq 1: ${count}-event ticker + ${baseSeq} of a warm-up job`;
  report({
    figure,
    metric: "welcome → last replayed envelope",
    value: ms(fromWelcome),
    unit: "ms",
    notes,
  });
  report({
    figure,
    metric: "hello sent → last replayed envelope",
    value: ms(last - helloAt),
    unit: "ms",
  });
  report({
    figure,
    metric: "replay rate",
    value: fmt(replayed / (fromWelcome / 1000), 0),
    unit: "envelopes/s",
  });
  await resumed.close();
}

// ---- 8. memory of idle sessions -------------------------------------------

async function figure8(): Promise<void> {
  const sessions = scaled(1000, 20);
  const batch = 50;
  const principals = 20; // the runtime caps connected sessions per principal at 100
  heading(`8. runtime RSS with ${sessions} idle sessions (child process "arcp serve")`);
  const dir = await Deno.makeTempDir({ prefix: "arcp_bench_mem_" });
  const tokensFile = `${dir}/tokens.txt`;
  const tokens = Array.from({ length: principals }, (_, i) => `mem${i}-token`);
  await Deno.writeTextFile(tokensFile, tokens.map((t, i) => `${t}=mem${i}`).join("\n") + "\n");
  const child = await startChildServer(`${dir}/arcp.kv`, ["--tokens-file", tokensFile]);
  const clients: BenchClient[] = [];
  try {
    const pid = child.process.pid;
    // Warm the hello path so the baseline already holds its compiled code.
    const warm = await Promise.all(
      tokens.map((token) => BenchClient.connect(child.url, { token, features: [] })),
    );
    await Promise.all(warm.map((c) => c.close()));
    await new Promise((r) => setTimeout(r, 1000));
    const before = await rssKiB(pid);
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
    const after = await rssKiB(pid);
    const figure = "8. idle session memory";
    report({ figure, metric: "server RSS before", value: fmt(before / 1024, 1), unit: "MiB" });
    report({
      figure,
      metric: `server RSS with ${clients.length} idle sessions`,
      value: fmt(after / 1024, 1),
      unit: "MiB",
    });
    report({
      figure,
      metric: "RSS per idle session",
      value: fmt((after - before) / clients.length, 1),
      unit: "KiB",
      notes: `(after − before) / ${clients.length}, VmRSS of the server process`,
    });
  } finally {
    await pool(clients, 100, (c) => c.close());
    await child.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

// ---- main -----------------------------------------------------------------

const FIGURES: Array<[number, () => Promise<void>]> = [
  [1, figure1],
  [2, figure2],
  [3, figure3],
  [4, figure4],
  [5, figure5],
  [6, figure6],
  [7, figure7],
  [8, figure8],
];

if (import.meta.main) {
  const facts = machineFacts();
  const factLine = `${facts.cores} cores, ${facts.os}${
    facts.memMiB ? `, ${fmt(facts.memMiB / 1024, 1)} GiB RAM` : ""
  }, Deno ${facts.deno} (V8 ${facts.v8})`;
  console.log(`ARCP runtime figures — ${factLine}${SCALE !== 1 ? `, scale ${SCALE}` : ""}`);
  const started = performance.now();
  const failed: number[] = [];
  for (const [n, fn] of FIGURES) {
    if (ONLY && !ONLY.has(n)) continue;
    try {
      await fn();
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
    "Single run on a noisy machine: read them as orders of magnitude, not as guarantees.",
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
    await Deno.writeTextFile(results, doc);
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
