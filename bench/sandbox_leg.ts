/**
 * The sandbox leg of a job alone, for A/B runs of `src/sandbox`: the
 * supervisor over the process launcher in this process (the runtime's side
 * of the leg), echo jobs one after another, without the sessions, store and
 * transport around them. Prints the leg's latency (start → result callback)
 * and the CPU time per job of this process and of the sandbox processes,
 * whose per-job share figure 11 cannot separate from the rest of the runtime.
 * Reports; asserts nothing.
 *
 * ```sh
 * # reused echo, back to back (threads never idle: CPU cost of the leg's code)
 * deno run -A --unstable-kv --unstable-worker-options bench/sandbox_leg.ts
 * # 1 ms apart: every hand-off wakes an idle thread, as in figure 11d
 * deno run -A --unstable-kv --unstable-worker-options bench/sandbox_leg.ts --gap-ms 1
 * # fresh echo at 20 jobs/s, as in figure 11b
 * deno run -A --unstable-kv --unstable-worker-options bench/sandbox_leg.ts --fresh --gap-ms 50 --jobs 300
 * # another checkout's sandbox (a baseline), with this bench
 * deno run -A --unstable-kv --unstable-worker-options bench/sandbox_leg.ts --root /work/wt/base
 * # the floor: a process of the same shape that only relays (bench/leg_floor/)
 * deno run -A --unstable-kv --unstable-worker-options bench/sandbox_leg.ts --floor --gap-ms 1
 * # fresh tickers of 1,000 events, one after another: the event path's share of the sandbox's CPU
 * deno run -A --unstable-kv --unstable-worker-options bench/sandbox_leg.ts --ticker 1000 --jobs 40
 * ```
 *
 * For reused echo and the floor, whose jobs all go through one process, the
 * report adds that process's CPU per job by thread (`/proc/<pid>/task/<tid>/schedstat`,
 * to the nanosecond, where the per-process figure counts 10 ms ticks): at
 * `--gap-ms 50`, the pacing of figure 11b, it shows what each thread pays
 * per job once it idles between jobs.
 *
 * With `--ticker <count>`, each job is a fresh `ticker` of that many events
 * (credit given back as the runtime does once events are handed on), and
 * the report adds, per event, the CPU each thread of the job's own sandbox
 * process spent from its first event to its result (`/proc/<pid>/task/<tid>/schedstat`):
 * the host's main thread (the relay), the agent's worker, V8's helper
 * threads (compilation) and the rest. What the sandbox spends per job
 * beyond that is the job's start: its process, its worker, its warm-up.
 *
 * The floor is what the leg's hops cost by themselves on this machine: a
 * frame over a Unix socket, `postMessage` to a worker and back, a frame
 * back, with none of the sandbox's checks, slots or bookkeeping. A leg
 * near it has no per-job code left worth trimming; only fewer hops or
 * wake-ups would take it lower.
 *
 * `-A`: Deno lets a program read other processes' `/proc` entries only with
 * every permission.
 *
 * @module
 */
import { parseArgs } from "parse-args";
import type { HostLauncher } from "../src/sandbox/host_launcher.ts";
import type { SupervisedSandbox } from "../src/sandbox/supervisor.ts";
import type { Sharing } from "../src/sandbox/sandbox.ts";
import { fmt, ROOT, stats } from "./_util.ts";
import { encodeFrame, FrameWriter, readFrames } from "../src/sandbox/host/frames.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string" },
    fresh: { type: "boolean" },
    floor: { type: "boolean" },
    jobs: { type: "string" },
    "gap-ms": { type: "string" },
    ticker: { type: "string" },
  },
});
/** Events per ticker job, or undefined for echo jobs. */
const ticker = values.ticker === undefined ? undefined : Number(values.ticker);
const root = values.root ?? ROOT;
const fresh = values.fresh === true || values.ticker !== undefined;
const floor = values.floor === true;
const jobs = Number(values.jobs ?? (fresh ? 300 : 3000));
const gapMs = Number(values["gap-ms"] ?? 0);

const { HostLauncher: Launcher } = await import(
  `file://${root}/src/sandbox/host_launcher.ts`
) as { HostLauncher: typeof HostLauncher };
const { SupervisedSandbox: Supervisor } = await import(
  `file://${root}/src/sandbox/supervisor.ts`
) as { SupervisedSandbox: typeof SupervisedSandbox };

/** CPU fields of `/proc/<pid>/stat` (ms): own user + system, and reaped children's. */
function cpuOf(pid: number): { own: number; reaped: number } {
  const text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = text.slice(text.lastIndexOf(") ") + 2).split(" ");
  // utime, stime, cutime, cstime: fields 14 to 17, in clock ticks of 10 ms.
  return { own: (+f[11] + +f[12]) * 10, reaped: (+f[13] + +f[14]) * 10 };
}

/** CPU time (ms) of every sandbox process this one started: alive, and reaped. */
function sandboxCpuMs(): number {
  let ms = cpuOf(Deno.pid).reaped;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const text = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (text.slice(text.lastIndexOf(") ") + 2).split(" ")[1] !== String(Deno.pid)) continue;
      const { own, reaped } = cpuOf(Number(entry.name));
      ms += own + reaped;
    } catch {
      // exited meanwhile
    }
  }
  return ms;
}

/** A thread of a sandbox process, by what it runs. */
type ThreadKind = "main" | "worker" | "v8" | "other";

/** CPU time (ns) this thread spent reading `/proc` for {@linkcode threadCpuNs}: not the leg's. */
let scanNs = 0;

/** CPU time (ns) so far of the calling thread. */
function ownThreadNs(): number {
  return Number(Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[0]);
}

/** CPU time (ns) so far of each sandbox process this one started, by thread kind. */
function threadCpuNs(): Map<string, Map<ThreadKind, number>> {
  const scan0 = ownThreadNs();
  const out = new Map<string, Map<ThreadKind, number>>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const text = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      if (text.slice(text.lastIndexOf(") ") + 2).split(" ")[1] !== String(Deno.pid)) continue;
      const byKind = new Map<ThreadKind, number>();
      for (const task of Deno.readDirSync(`/proc/${entry.name}/task`)) {
        const dir = `/proc/${entry.name}/task/${task.name}`;
        const comm = Deno.readTextFileSync(`${dir}/comm`).trim();
        // Deno names a Web Worker's thread `worker-<n>` and V8's helpers `V8 DefaultWorke(r)`.
        const kind: ThreadKind = comm.startsWith("worker-")
          ? "worker"
          : comm === "deno"
          ? "main"
          : comm.startsWith("V8 ")
          ? "v8"
          : "other";
        const ns = Number(Deno.readTextFileSync(`${dir}/schedstat`).split(" ")[0]);
        byKind.set(kind, (byKind.get(kind) ?? 0) + ns);
      }
      out.set(entry.name, byKind);
    } catch {
      // exited meanwhile
    }
  }
  scanNs += ownThreadNs() - scan0;
  return out;
}

/**
 * The CPU a job's own sandbox process spent between two snapshots, by
 * thread kind: of the processes in both, the one whose worker ran most.
 */
function jobThreads(
  before: Map<string, Map<ThreadKind, number>>,
  after: Map<string, Map<ThreadKind, number>>,
): Map<ThreadKind, number> | undefined {
  let best: Map<ThreadKind, number> | undefined;
  for (const [pid, now] of after) {
    const then = before.get(pid);
    if (!then) continue;
    const spent = new Map<ThreadKind, number>();
    for (const [kind, ns] of now) spent.set(kind, ns - (then.get(kind) ?? 0));
    if ((spent.get("worker") ?? 0) > (best?.get("worker") ?? -1)) best = spent;
  }
  return best;
}

/** Per thread kind, what the measured ticker jobs' processes spent from first event to result (ns). */
const eventPath = new Map<ThreadKind, number>();
let eventPathJobs = 0;
let measuring = false;

/** Starts the floor's relay (`bench/leg_floor/relay.ts`); returns its job path and its stop. */
async function startFloor(): Promise<{ one: () => Promise<number>; close: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_leg_floor_" });
  const path = `${dir}/relay.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-net",
      `${ROOT}/bench/leg_floor/relay.ts`,
      path,
    ],
  }).spawn();
  const conn = await Promise.race([
    listener.accept(),
    child.status.then((s) => Promise.reject(new Error(`the floor relay exited (${s.code})`))),
  ]);
  const out = new FrameWriter(conn);
  const frames = readFrames(conn, 1 << 20);
  let n = 0;
  return {
    one: async () => {
      const t0 = performance.now();
      out.write(encodeFrame({
        c: "post",
        msg: {
          t: "start",
          j: 0,
          jobId: `job_${n++}`,
          traceId: "0123456789abcdef0123456789abcdef",
          input: { i: n },
          lease: {},
          beatMs: 1000,
        },
      }));
      await frames.next();
      return performance.now() - t0;
    },
    close: async () => {
      child.kill("SIGKILL");
      await child.status;
      conn.close();
      listener.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const floorRelay = floor ? await startFloor() : undefined;
const launcher = floor ? undefined : await Launcher.create(fresh ? {} : { warmPool: 0 });
const sandbox = launcher ? new Supervisor(launcher) : undefined;
const agentUrl = ticker !== undefined
  ? `file://${ROOT}/agents/ticker.ts`
  : `file://${ROOT}/bench/agents/${fresh ? "echo_fresh" : "echo_reused"}.ts`;
const sharing: Sharing | undefined = fresh
  ? undefined
  : { concurrency: 1, maxJobs: 1_000_000, idleSec: 60 };
let next = 0;

/** One job through the leg; resolves with its latency (ms). */
async function one(): Promise<number> {
  if (floorRelay) return await floorRelay.one();
  const t0 = performance.now();
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  let first: Map<string, Map<ThreadKind, number>> | undefined;
  await sandbox!.start({
    jobId: `job_${next++}`,
    principal: "bench",
    traceId: "0123456789abcdef0123456789abcdef",
    agentUrl,
    input: ticker !== undefined ? { count: ticker } : { i: next },
    lease: {},
    ...(sharing ? { sharing } : {}),
  }, {
    onEvents: () => {
      if (measuring && first === undefined) first = threadCpuNs();
      return Promise.resolve();
    },
    onCall: () => Promise.resolve(null),
    onChunk: () => Promise.resolve(),
    onChunkEnd: () => {},
    onResult: () => {
      // Read before the process is killed for its job's end.
      const spent = first && jobThreads(first, threadCpuNs());
      if (spent) {
        eventPathJobs++;
        for (const [kind, ns] of spent) eventPath.set(kind, (eventPath.get(kind) ?? 0) + ns);
      }
      resolve();
    },
    onError: (err) => reject(err),
  });
  await promise;
  return performance.now() - t0;
}

const pause = () => new Promise((r) => setTimeout(r, gapMs));
try {
  // Warm: the processes started, the code on both sides compiled.
  for (let i = 0; i < (fresh ? 20 : 300); i++) {
    if (gapMs > 0) await pause();
    await one();
  }
  measuring = true;
  scanNs = 0;
  const self0 = cpuOf(Deno.pid).own;
  const sandbox0 = sandboxCpuMs();
  // One process serves every reused job (and the floor's): its threads, job by job.
  const threads0 = fresh ? undefined : threadCpuNs();
  const samples: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < jobs; i++) {
    if (gapMs > 0) await pause();
    samples.push(await one());
  }
  const wall = performance.now() - t0;
  // This process's first: reading every /proc entry costs CPU of its own.
  measuring = false;
  // The ticker's /proc scans are this bench's own work, not the leg's.
  const self1 = cpuOf(Deno.pid).own - scanNs / 1e6;
  const sandbox1 = sandboxCpuMs();
  const threads = threads0 && jobThreads(threads0, threadCpuNs());
  const s = stats(samples);
  const perJob = (ms: number) => `${fmt((ms / jobs) * 1000, 0)} µs`;
  console.log(
    `${
      floor
        ? "floor relay"
        : ticker !== undefined
        ? `fresh ticker of ${ticker}`
        : fresh
        ? "fresh echo"
        : "reused echo"
    }, ${jobs} jobs ${gapMs} ms apart` +
      `${floor ? "" : ` (${root})`}: ` +
      `leg p50 ${fmt(s.p50 * 1000, 0)} µs, p90 ${fmt(s.p90 * 1000, 0)} µs, ` +
      `p99 ${fmt(s.p99 * 1000, 0)} µs; ${fmt(jobs / (wall / 1000), 0)} jobs/s; CPU per job: ` +
      `sandbox processes ${perJob(sandbox1 - sandbox0)}, this process ${perJob(self1 - self0)}` +
      (gapMs > 0 ? " (its timers between jobs included)" : ""),
  );
  if (threads) {
    const kinds: ThreadKind[] = ["main", "worker", "v8", "other"];
    console.log(
      `per job, by thread of the ${floor ? "relay" : "sandbox"} process: ` +
        kinds.map((k) => `${k} ${fmt((threads.get(k) ?? 0) / jobs / 1000, 1)} µs`).join(", "),
    );
  }
  if (ticker !== undefined && ticker > 0 && eventPathJobs > 0) {
    const perEvent = (ns: number) => `${fmt(ns / eventPathJobs / ticker / 1000, 2)} µs`;
    const kinds: ThreadKind[] = ["main", "worker", "v8", "other"];
    console.log(
      `per event: sandbox processes ${
        fmt(((sandbox1 - sandbox0) / jobs / ticker) * 1000, 1)
      } µs in all; ` +
        `the job's process from its first event to its result (${eventPathJobs} jobs): ` +
        kinds.map((k) => `${k} ${perEvent(eventPath.get(k) ?? 0)}`).join(", "),
    );
  }
} finally {
  await sandbox?.close();
  await floorRelay?.close();
}
