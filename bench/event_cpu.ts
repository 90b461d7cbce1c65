/**
 * The runtime's CPU per agent event, for A/B runs of the event path (the
 * worker's outbox, the sandbox process's relay, the supervisor's checks,
 * the fan-out): `arcp serve` of one checkout, or of two side by side, and
 * rounds of tickers (`sessions` at once, `count` events each) on each, the
 * servers taking turns round by round (which goes first alternates), so
 * both run under the same load from whatever else the machine runs. Prints,
 * per server and round, events/s and the CPU time per event of the runtime
 * process's main thread, of its KV writer thread, of its other threads
 * (with `--sandbox worker`, the agents' workers among them) and of its sandbox processes, read from
 * `/proc`, then each one's medians. Figure 12 gives events/s; on a loaded
 * host its wall clock swings more than any change to the event path, where
 * these interleaved CPU counters stay comparable. Reports; asserts nothing.
 *
 * With `--gc`, each runtime runs with V8's `--trace-gc-nvp` and each round
 * also reports its main isolate's scavenges: how many, their pause and the
 * bytes they promoted to the old generation, per event (an event staged in
 * the runtime that outlives two scavenges is promoted; see bench/RESULTS.md).
 *
 * ```sh
 * # this checkout against a baseline: 50 sessions × ticker of 1,000, in-process workers
 * deno run -A --unstable-kv --unstable-worker-options bench/event_cpu.ts --base /work/wt/base \
 *   --sandbox worker --sessions 50 --count 1000
 * # the same in sandbox processes, with the runtimes' scavenges
 * deno run -A --unstable-kv --unstable-worker-options bench/event_cpu.ts --base /work/wt/base \
 *   --sessions 50 --count 1000 --gc
 * # one ticker of 20,000 in sandbox processes
 * deno run -A --unstable-kv --unstable-worker-options bench/event_cpu.ts --base /work/wt/base
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
  fmt,
  type JobRun,
  KV_THREAD,
  readProcStat,
  ROOT,
  spawnBenchServe,
  statCpuMs,
} from "./_util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string" },
    base: { type: "string" },
    sandbox: { type: "string" },
    sessions: { type: "string" },
    count: { type: "string" },
    rounds: { type: "string" },
    gc: { type: "boolean" },
  },
});
const roots = [values.root ?? ROOT, ...(values.base ? [values.base] : [])];
const sandbox = values.sandbox === "worker" ? "worker" : "process";
const sessions = Number(values.sessions ?? 1);
const count = Number(values.count ?? 20_000);
const rounds = Number(values.rounds ?? 6);
/** How long to wait after a round for its sandbox processes to be reaped (ms). */
const REAP_MS = 300;

/**
 * CPU time (ms) so far of a runtime's threads, by what they do, and of its
 * sandbox processes.
 */
interface CpuTimes {
  /** The main thread: the event loop, every check and the fan-out. */
  main: number;
  /** Deno KV's SQLite writer thread. */
  kv: number;
  /** V8's helper threads (GC, compilation) of every isolate. */
  v8: number;
  /** Threads that have ended: with `--sandbox worker`, the agents' workers of finished jobs. */
  gone: number;
  /** Every other live thread (I/O, live workers). */
  rest: number;
  /** Its sandbox processes, live and reaped. */
  children: number;
}

/** Reads a runtime's CPU times: its threads' by kind, and its sandbox processes'. */
function cpuTimes(pid: number): CpuTimes {
  const self = readProcStat(`/proc/${pid}/stat`)!.fields;
  const times = { main: 0, kv: 0, v8: 0, gone: 0, rest: 0, children: statCpuMs(self, 13) };
  let listed = 0;
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    const stat = readProcStat(`/proc/${pid}/task/${task.name}/stat`);
    if (!stat) continue; // the thread ended while listed: counted as gone
    const t = statCpuMs(stat.fields);
    listed += t;
    if (Number(task.name) === pid) times.main += t;
    else if (stat.name === KV_THREAD) times.kv += t;
    else if (stat.name.startsWith("V8 ")) times.v8 += t;
    else times.rest += t;
  }
  times.gone = statCpuMs(self) - listed;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = readProcStat(`/proc/${entry.name}/stat`);
    // ppid: field 4 of stat(5).
    if (stat && Number(stat.fields[1]) === pid) times.children += statCpuMs(stat.fields);
  }
  return times;
}

/** A round's scavenges in a runtime's main isolate, per event. */
interface Scavenges {
  /** How many there were in the round. */
  count: number;
  /** Their pause (µs per event). */
  pauseUs: number;
  /** Bytes they promoted to the old generation (per event). */
  promoted: number;
}

/**
 * The scavenges `--trace-gc-nvp` reported in `out` from `from` on, of the
 * isolate that reported first (the runtime's main isolate: it runs before
 * any worker starts). A line another thread's output cut into is skipped.
 */
function scavenges(out: string, from: number, events: number): Scavenges {
  const line = /^\[\d+:(0x[0-9a-f]+)(?::\d+)?\]\s+[\d.]+ ms: GC: (\{.*\})$/gm;
  const main = line.exec(out)?.[1];
  const s = { count: 0, pauseUs: 0, promoted: 0 };
  line.lastIndex = from;
  for (let m = line.exec(out); m; m = line.exec(out)) {
    if (m[1] !== main) continue;
    let gc: { gc?: string; pause?: number; promoted?: number };
    try {
      gc = JSON.parse(m[2]);
    } catch {
      continue;
    }
    if (gc.gc !== "s") continue;
    s.count++;
    s.pauseUs += (gc.pause ?? 0) * 1000;
    s.promoted += gc.promoted ?? 0;
  }
  return { count: s.count, pauseUs: s.pauseUs / events, promoted: s.promoted / events };
}

/** One server's measure of one round: events/s, CPU per event (µs) of each part, scavenges with `--gc`. */
type Round = { eventsPerSec: number; gc?: Scavenges } & CpuTimes;

/** The parts of {@linkcode CpuTimes}, as printed. */
const PARTS: Array<[keyof CpuTimes, string]> = [
  ["main", "main"],
  ["kv", "KV writer"],
  ["v8", "V8 helpers"],
  ["gone", "ended threads"],
  ["rest", "other threads"],
  ["children", "sandbox processes"],
];

/** One ticker of `count` events. */
function ticker(client: BenchClient): Promise<JobRun> {
  return client.run("ticker", { count, interval_ms: 0 });
}

/** Runs one round of tickers on a server and measures it. */
async function round(server: ChildServerLike, clients: BenchClient[]): Promise<Round> {
  const before = cpuTimes(server.process.pid);
  const logged = server.output().length;
  const t0 = performance.now();
  const runs = await Promise.all(clients.map((c) => ticker(c)));
  const secs = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, REAP_MS));
  const after = cpuTimes(server.process.pid);
  const events = runs.reduce((n, r) => n + r.events, 0);
  const r = { eventsPerSec: events / secs } as Round;
  for (const [k] of PARTS) r[k] = (after[k] - before[k]) * 1000 / events;
  if (values.gc) r.gc = scavenges(server.output(), logged, events);
  return r;
}

/** A round's CPU per event, part by part and in all. */
function describe(cpu: (k: keyof CpuTimes) => number): string {
  const all = PARTS.reduce((sum, [k]) => sum + cpu(k), 0);
  return PARTS.map(([k, label]) => `${label} ${fmt(cpu(k), 1)}`).join(", ") +
    `; all ${fmt(all, 1)}`;
}

/** A round's scavenges, when measured. */
function describeGc(gc: Scavenges | undefined): string {
  if (!gc) return "";
  return `; main isolate: ${gc.count} scavenges, pause ${fmt(gc.pauseUs, 1)} µs/event, ` +
    `promoted ${fmt(gc.promoted, 0)} B/event`;
}

/** The median of some numbers. */
function median(xs: number[]): number {
  const s = xs.toSorted((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const servers: ChildServerLike[] = [];
try {
  const env: Record<string, string> = values.gc ? { DENO_V8_FLAGS: "--trace-gc-nvp" } : {};
  for (const root of roots) {
    servers.push(await spawnBenchServe(["--sandbox", sandbox], root, env));
  }
  const clients = await Promise.all(
    servers.map((s) =>
      Promise.all(Array.from({ length: sessions }, () => BenchClient.connect(s.url)))
    ),
  );
  // Compile, JIT and warm each server's pool first.
  for (let k = 0; k < servers.length; k++) await round(servers[k], clients[k]);
  const results: Round[][] = servers.map(() => []);
  console.log(`${sessions} session(s) × ticker of ${count}, sandbox ${sandbox}, ${rounds} rounds`);
  for (let i = 0; i < rounds; i++) {
    for (let n = 0; n < servers.length; n++) {
      const k = (i + n) % servers.length;
      const r = await round(servers[k], clients[k]);
      results[k].push(r);
      console.log(
        `round ${i} ${roots[k]}: ${fmt(r.eventsPerSec, 0)} events/s; CPU per event (µs): ${
          describe((p) => r[p])
        }${describeGc(r.gc)}`,
      );
    }
  }
  roots.forEach((root, k) => {
    const m = (f: (r: Round) => number) => median(results[k].map(f));
    console.log(
      `median ${root}: ${fmt(m((r) => r.eventsPerSec), 0)} events/s; CPU per event (µs): ${
        describe((p) => m((r) => r[p]))
      }${
        values.gc
          ? describeGc({
            count: m((r) => r.gc!.count),
            pauseUs: m((r) => r.gc!.pauseUs),
            promoted: m((r) => r.gc!.promoted),
          })
          : ""
      }`,
    );
  });
  await Promise.all(clients.flat().map((c) => c.close()));
} finally {
  await Promise.all(servers.map((s) => s.stop()));
}
