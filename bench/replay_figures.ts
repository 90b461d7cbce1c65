/**
 * Figure 7: a detached session's resume replaying its whole log (a
 * 10,000-event ticker and a warm-up job, 10,054 envelopes from seq 1).
 *
 * 7a is what a user sees: the runtime runs as `arcp serve` in a child
 * process (as in figures 8 and 11) and the client, in the bench process,
 * decodes every envelope on its own core. 7b is the same with the runtime in
 * the bench process, how figure 7 was measured until 2026-12-01: the
 * client's decoding then competes with the replay on one thread. Each
 * resumes the same session {@linkcode RESUMES} times, each from seq 1 (the
 * client never acks), and reports the median with the spread.
 *
 * `ARCP_BENCH_SERVER_ROOT=/path/to/checkout` runs 7a's child server from
 * another checkout (a baseline) with this bench and client; 7b, whose
 * runtime is this checkout's code in this process, is skipped then.
 *
 * @module
 */
import { heading, report, scaled } from "./_report.ts";
import {
  BenchClient,
  fmt,
  ROOT,
  SERVER_ROOT,
  spawnBenchServe,
  startBenchServer,
  stats,
  waitIdle,
} from "./_util.ts";

const ms = (n: number) => fmt(n, n < 10 ? 2 : 1);

/** Resumes per server; the median of their times is the figure. */
const RESUMES = 5;

/** One resume's replay. */
interface Replay {
  /** Welcome → last replayed envelope (ms). */
  fromWelcome: number;
  /** Hello sent → last replayed envelope (ms). */
  fromHello: number;
  /** Seq-bearing envelopes received. */
  replayed: number;
}

/** A detached session with a logged ticker, ready to be resumed. */
interface Detached {
  sessionId: string;
  resumeToken: string;
  /** The ticker's trace id: its `job.result` ends the replay. */
  traceId: string;
  /** Envelopes of the warm-up job before the ticker. */
  baseSeq: number;
}

/** Runs a warm-up job and a `count`-event ticker, detaching once the ticker is accepted. */
async function detachWithTicker(url: string, http: string, count: number): Promise<Detached> {
  const first = await BenchClient.connect(url);
  await first.run("ticker", { count: 50, interval_ms: 0 }); // warm-up
  const baseSeq = first.lastSeq;
  const run = first.submit("ticker", { count, interval_ms: 0 });
  // Detach as soon as the submit is answered; the job runs on and its events are logged.
  while (run.acceptedAt === undefined && !run.terminal) await new Promise((r) => setTimeout(r, 1));
  const { sessionId, resumeToken } = first;
  await first.close();
  await waitIdle(http);
  return { sessionId, resumeToken, traceId: run.traceId, baseSeq };
}

/** Resumes the session from seq 1 and times the replay up to the ticker's result. */
async function resumeOnce(url: string, session: Detached): Promise<Replay> {
  let last = 0;
  let replayed = 0;
  const { promise: caughtUp, resolve } = Promise.withResolvers<void>();
  const helloAt = performance.now();
  const resumed = await BenchClient.connect(url, {
    resume: {
      session_id: session.sessionId,
      resume_token: session.resumeToken,
      last_event_seq: 0,
    },
    onEnvelope: (env, at) => {
      if (env.event_seq === undefined) return;
      replayed++;
      last = at;
      if (env.type === "job.result" && env.trace_id === session.traceId) resolve();
    },
  });
  await caughtUp;
  // The token rotates on every welcome.
  session.resumeToken = resumed.resumeToken;
  const replay = { fromWelcome: last - resumed.welcomedAt, fromHello: last - helloAt, replayed };
  await resumed.close();
  return replay;
}

/** Resumes {@linkcode RESUMES} times; the replays, in order. */
async function resumeRepeatedly(url: string, session: Detached): Promise<Replay[]> {
  const replays: Replay[] = [];
  for (let i = 0; i < RESUMES; i++) replays.push(await resumeOnce(url, session));
  return replays;
}

/** A process's `/proc/<pid>/status` field in KiB, read through `cat` (see `rssKiB`). */
async function statusKiB(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stderr: "null" })
    .output();
  const m = new TextDecoder().decode(out.stdout).match(
    new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m"),
  );
  if (!m) throw new Error(`no ${field} for pid ${pid}`);
  return Number(m[1]);
}

/** CPU time (ms) a process's threads have used, from their `schedstat` (ns), through `sh`. */
async function cpuMs(pid: number): Promise<number> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `cat /proc/${pid}/task/*/schedstat`],
    stderr: "null",
  }).output();
  let ns = 0;
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const first = Number(line.split(" ")[0]);
    if (Number.isFinite(first)) ns += first;
  }
  return ns / 1e6;
}

/** Resets a process's peak resident set (`VmHWM`) to its current one (Linux ≥ 4.0). */
async function resetPeakRss(pid: number): Promise<boolean> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `echo 5 > /proc/${pid}/clear_refs`],
    stderr: "null",
  }).output();
  return out.success;
}

/** Reports one server's replays. */
function reportReplays(figure: string, where: string, replays: Replay[], notes: string): void {
  const welcome = stats(replays.map((r) => r.fromWelcome));
  const hello = stats(replays.map((r) => r.fromHello));
  report({
    figure,
    metric: `welcome → last replayed envelope, median of ${replays.length} resumes`,
    value: ms(welcome.p50),
    unit: "ms",
    notes: `min ${ms(welcome.min)}, max ${ms(welcome.max)}, first ${
      ms(replays[0].fromWelcome)
    }; ${where}; ${notes}`,
  });
  report({
    figure,
    metric: "hello sent → last replayed envelope, median",
    value: ms(hello.p50),
    unit: "ms",
    notes: `min ${ms(hello.min)}, max ${ms(hello.max)}`,
  });
  report({
    figure,
    metric: "replay rate, median",
    value: fmt(replays[0].replayed / (welcome.p50 / 1000), 0),
    unit: "envelopes/s",
  });
}

/** Every resume must replay the whole log, or the times mean nothing. */
function checkComplete(replays: Replay[]): void {
  const counts = new Set(replays.map((r) => r.replayed));
  if (counts.size !== 1) throw new Error(`resumes replayed ${[...counts].join(", ")} envelopes`);
}

/** Figure 7: resume replay, runtime in a child process (7a) and in the bench process (7b). */
export async function figure7(): Promise<void> {
  const count = scaled(10_000, 500);
  heading(`7. resume replay of a detached session's ${count}-event ticker`);
  const external = SERVER_ROOT !== ROOT;
  const child = await spawnBenchServe([], SERVER_ROOT);
  try {
    const http = child.url.replace(/^ws/, "http").replace(/\/arcp$/, "");
    const session = await detachWithTicker(child.url, http, count);
    const pid = child.process.pid;
    const rssBefore = await statusKiB(pid, "VmRSS");
    const peakReset = await resetPeakRss(pid);
    const cpuBefore = await cpuMs(pid);
    const replays = await resumeRepeatedly(child.url, session);
    const cpu = (await cpuMs(pid) - cpuBefore) / replays.length;
    checkComplete(replays);
    const peak = await statusKiB(pid, "VmHWM");
    reportReplays(
      "7a. resume replay (child server)",
      `runtime: \`arcp serve\` child process${external ? ` from ${SERVER_ROOT}` : ""}`,
      replays,
      `${
        replays[0].replayed
      } envelopes from seq 1: ${count}-event ticker + ${session.baseSeq} of a warm-up job`,
    );
    report({
      figure: "7a. resume replay (child server)",
      metric: "runtime CPU per resume, all threads",
      value: ms(cpu),
      unit: "ms",
      notes: "mean over the resumes; steadier than wall time on a shared machine",
    });
    if (peakReset) {
      report({
        figure: "7a. resume replay (child server)",
        metric: "runtime peak RSS during the resumes, above its RSS before",
        value: fmt((peak - rssBefore) / 1024, 1),
        unit: "MiB",
        notes: `VmHWM ${fmt(peak / 1024, 1)} MiB after a reset, VmRSS before ${
          fmt(rssBefore / 1024, 1)
        } MiB`,
      });
    }
  } finally {
    await child.stop();
  }
  if (external) return;
  await using server = await startBenchServer();
  const session = await detachWithTicker(server.url, server.http, count);
  const replays = await resumeRepeatedly(server.url, session);
  checkComplete(replays);
  reportReplays(
    "7b. resume replay (in-process server)",
    "runtime in the bench process, sharing its thread with the client",
    replays,
    "figure 7 before 2026-12-01 was the first resume of this kind",
  );
}
