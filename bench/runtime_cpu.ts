/**
 * The runtime's own CPU per reused echo job, for A/B runs of the runtime's
 * per-job path: `arcp serve` of one checkout, or of two side by side, and
 * `echo-reused` jobs one after another on one session and then on 8, the
 * two servers' jobs interleaved one by one, so both run under the same
 * load from whatever else the machine runs. Prints, per server, the
 * submit→result latency and the CPU time per job of the runtime process's
 * main thread (JavaScript, the event loop, the KV commit calls, socket
 * writes), of its KV writer thread and of the whole process (sandbox
 * processes excluded: they are processes of their own), read from
 * `/proc/<pid>/task/<tid>/stat`. Figure 11d gives jobs/s; on a loaded host
 * its wall clock swings more than any change to the per-job path, where
 * these interleaved CPU counters stay comparable. Reports; asserts nothing.
 *
 * ```sh
 * # this checkout against a baseline, 2,000 jobs on one session and 8 × 250
 * deno run -A --unstable-kv --unstable-worker-options bench/runtime_cpu.ts --base /work/wt/base
 * # this checkout alone
 * deno run -A --unstable-kv --unstable-worker-options bench/runtime_cpu.ts --jobs 3000
 * ```
 *
 * `-A`: Deno lets a program read other processes' `/proc` entries only with
 * every permission.
 *
 * @module
 */
import { parseArgs } from "parse-args";
import {
  BenchClient,
  type ChildServerLike,
  connectSpread,
  fmt,
  KV_THREAD,
  readProcStat,
  ROOT,
  spawnBenchServe,
  statCpuMs,
  stats,
} from "./_util.ts";
import { FIGURE11_SERVE_FLAGS } from "./sandbox_figures.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string" },
    base: { type: "string" },
    jobs: { type: "string" },
    "per-session": { type: "string" },
  },
});
const roots = [values.root ?? ROOT, ...(values.base ? [values.base] : [])];
const jobs = Number(values.jobs ?? 2000);
const perSession = Number(values["per-session"] ?? 250);
const SESSIONS = 8;
/** CPU time (ms) spent so far by a process: its main thread, its KV writer thread, all threads. */
interface CpuTimes {
  main: number;
  kv: number;
  total: number;
}

/** Reads a process's CPU times per thread from `/proc`. */
function cpuTimes(pid: number): CpuTimes {
  const times = { main: 0, kv: 0, total: 0 };
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    const stat = readProcStat(`/proc/${pid}/task/${task.name}/stat`);
    if (!stat) continue; // the thread ended while listed
    const ms = statCpuMs(stat.fields);
    times.total += ms;
    if (Number(task.name) === pid) times.main += ms;
    if (stat.name === KV_THREAD) times.kv += ms;
  }
  return times;
}

/** What one server did in one phase. */
interface Phase {
  latencies: number[];
  before: CpuTimes;
  after: CpuTimes;
}

/** Prints one server's line of a phase. */
function report(label: string, root: string, phase: Phase): void {
  const n = phase.latencies.length;
  const per = (k: keyof CpuTimes) => fmt((phase.after[k] - phase.before[k]) * 1000 / n, 0);
  const s = stats(phase.latencies);
  console.log(
    `${label.padEnd(22)} ${root}: submit→result mean ${fmt(s.mean)} ms, p50 ${fmt(s.p50)}, ` +
      `p99 ${fmt(s.p99)}; CPU per job (µs): main thread ${per("main")}, ` +
      `KV writer ${per("kv")}, process ${per("total")}`,
  );
}

/**
 * Runs `rounds` jobs on each client of each server, the servers' jobs
 * taking turns within every client's sequence.
 */
async function interleaved(
  servers: ChildServerLike[],
  clients: BenchClient[][],
  rounds: number,
): Promise<Phase[]> {
  const phases = servers.map((s) => ({
    latencies: [] as number[],
    before: cpuTimes(s.process.pid),
    after: cpuTimes(s.process.pid),
  }));
  await Promise.all(clients[0].map(async (_, c) => {
    for (let i = 0; i < rounds; i++) {
      for (let k = 0; k < servers.length; k++) {
        // Which server goes first alternates, so neither always follows the other.
        const which = (i + c + k) % servers.length;
        const t0 = performance.now();
        await clients[which][c].run("echo-reused", { i });
        phases[which].latencies.push(performance.now() - t0);
      }
    }
  }));
  servers.forEach((s, k) => phases[k].after = cpuTimes(s.process.pid));
  return phases;
}

const servers: ChildServerLike[] = [];
try {
  for (const root of roots) servers.push(await spawnBenchServe([...FIGURE11_SERVE_FLAGS], root));
  const one = await Promise.all(servers.map(async (s) => [await BenchClient.connect(s.url)]));
  await interleaved(servers, one, 100);
  const single = await interleaved(servers, one, jobs);
  roots.forEach((root, k) => report(`1 session × ${jobs}`, root, single[k]));
  await Promise.all(one.flat().map((c) => c.close()));
  const many = await Promise.all(servers.map((s) => connectSpread(s.url, SESSIONS)));
  await interleaved(servers, many, 20);
  const eight = await interleaved(servers, many, perSession);
  roots.forEach((root, k) => report(`${SESSIONS} sessions × ${perSession}`, root, eight[k]));
  await Promise.all(many.flat().map((c) => c.close()));
} finally {
  await Promise.all(servers.map((s) => s.stop()));
}
