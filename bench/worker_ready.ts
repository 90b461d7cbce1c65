/**
 * What readying one fresh agent worker costs a sandbox process: a child
 * started with the sandbox process's own `deno run` flags readies N workers
 * of an agent one after another, each as the sandbox process does (the
 * worker entry module, `ready`, the warm-up job), and terminates each. It
 * prints the CPU time of each worker's own thread up to its warm-up's
 * result (median and quartiles: robust to the other load of a shared
 * host), the child's CPU time per worker (all its threads, the ended ones
 * included, in clock ticks of 10 ms) and the wall time from `new Worker` to
 * the warm-up's result. Reports; asserts nothing. For an A/B, alternate
 * runs of two checkouts.
 *
 * With `--jobs K`, each warmed worker then runs K echo jobs `--gap-ms` apart
 * (40 by default: its threads idle between them, as at figure 11b's pacing)
 * through its own port, as a sandbox process posts them, and the report
 * adds each job's `start` → result wall time and the worker thread's CPU
 * for it (medians over the workers): job 1 is a fresh worker's first real
 * job, the later ones what the same worker costs once it has served some.
 * `--v8-flags` appends V8 flags to the checkout's own, to try one without
 * editing `src/sandbox/child_run.ts`; `--warm-runs` sets how many warm-up
 * jobs each worker runs before it counts as warmed (1 by default, as a
 * sandbox process does).
 *
 * ```sh
 * deno run -A bench/worker_ready.ts                   # echo-fresh, this checkout
 * deno run -A bench/worker_ready.ts --root /work/wt/base
 * deno run -A bench/worker_ready.ts --bare            # floor: a worker that only says ready
 * deno run -A bench/worker_ready.ts --jobs 4 --workers 40 --v8-flags=--always-sparkplug
 * ```
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { fmt, percentile, ROOT, stats } from "./_util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string" },
    workers: { type: "string" },
    bare: { type: "boolean" },
    child: { type: "boolean" },
    agent: { type: "string" },
    jobs: { type: "string" },
    "gap-ms": { type: "string" },
    "v8-flags": { type: "string" },
    "warm-runs": { type: "string" },
  },
});
const root = values.root ?? ROOT;
const count = Number(values.workers ?? 60);
const jobs = Number(values.jobs ?? 0);
const gapMs = Number(values["gap-ms"] ?? 40);

/** This process's CPU time (ms), every thread it ever ran included. */
function selfCpuMs(): number {
  const text = Deno.readTextFileSync("/proc/self/stat");
  const f = text.slice(text.lastIndexOf(") ") + 2).split(" ");
  return (+f[11] + +f[12]) * 10;
}

/** This process's threads, by id. */
function threads(): Set<string> {
  return new Set(Array.from(Deno.readDirSync("/proc/self/task"), (e) => e.name));
}

/** CPU time (ms) a thread of this process has run, at ns resolution; 0 once it ended. */
function threadCpuMs(tid: string): number {
  try {
    return Number(Deno.readTextFileSync(`/proc/self/task/${tid}/schedstat`).split(" ")[0]) / 1e6;
  } catch {
    return 0;
  }
}

/** A warmed worker, what readying it took, and its threads. */
interface Ready {
  wall: number;
  thread: number;
  worker: Worker;
  tids: string[];
}

/** A worker message, parsed when it came as JSON text (as the bootstrap posts). */
function readMessage(data: unknown): { t?: unknown; j?: unknown } | undefined {
  return typeof data === "string" && data.startsWith("{") ? JSON.parse(data) : data as never;
}

/** A `start` as a sandbox process posts it (JSON text); slot -1 is the warm-up's. */
function startText(j: number, input: unknown): string {
  return JSON.stringify({
    t: "start",
    j,
    jobId: j < 0 ? "" : `job-${j}`,
    traceId: "",
    input,
    lease: {},
    beatMs: 1000,
  });
}

/** The child: readies `count` workers in turn (each running `jobs` jobs); prints one JSON line. */
async function child(): Promise<void> {
  const { workerEntryUrl } = await import(`file://${root}/src/sandbox/worker/entry.ts`) as {
    workerEntryUrl(agentUrl: string): string;
  };
  const warmRuns = Number(values["warm-runs"] ?? 1);
  const agentUrl = `file://${root}/${values.agent ?? "bench/agents/echo_fresh.ts"}`;
  const bare = `data:application/javascript,${encodeURIComponent("postMessage('ready');")}`;
  /** Readies one worker; it is terminated unless `keep`. */
  const readyOne = (keep: boolean): Promise<Ready> => {
    const before = threads();
    const t0 = performance.now();
    const worker = new Worker(values.bare ? bare : workerEntryUrl(agentUrl), {
      type: "module",
      name: "agent",
      // deno-lint-ignore no-explicit-any
      deno: { permissions: { read: false, write: false, net: false } } as any,
    });
    let warmed = 0;
    return new Promise((resolve, reject) => {
      worker.onerror = (e) => reject(new Error(e.message));
      worker.onmessage = (e: MessageEvent) => {
        const msg = readMessage(e.data);
        if (!values.bare && msg?.t === "result" && msg.j === -1 && ++warmed < warmRuns) {
          worker.postMessage(startText(-1, null));
        } else if (values.bare || (msg?.t === "result" && msg.j === -1)) {
          const wall = performance.now() - t0;
          const tids = [...threads()].filter((tid) => !before.has(tid));
          const thread = tids.reduce((sum, tid) => sum + threadCpuMs(tid), 0);
          if (!keep) worker.terminate();
          resolve({ wall, thread, worker, tids });
        } else if (msg?.t === "ready") {
          worker.postMessage(startText(-1, null));
        }
      };
    });
  };
  /** Runs `jobs` echo jobs on a warmed worker, `gapMs` apart: per job, wall and worker CPU (ms). */
  const runJobs = async (ready: Ready): Promise<{ walls: number[]; threads: number[] }> => {
    const { worker, tids } = ready;
    const cpuNow = () => tids.reduce((sum, tid) => sum + threadCpuMs(tid), 0);
    const walls: number[] = [];
    const cpus: number[] = [];
    for (let j = 0; j < jobs; j++) {
      await new Promise((r) => setTimeout(r, gapMs));
      const cpu0 = cpuNow();
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        worker.onmessage = (e: MessageEvent) => {
          const msg = readMessage(e.data);
          if ((msg?.t === "result" || msg?.t === "error") && msg.j === j) resolve();
        };
        worker.postMessage(startText(j, { i: j }));
      });
      walls.push(performance.now() - t0);
      cpus.push(cpuNow() - cpu0);
    }
    worker.terminate();
    return { walls, threads: cpus };
  };
  // One first, outside the count: the process's own first-use costs.
  await readyOne(false);
  const cpu0 = selfCpuMs();
  const samples = [];
  const jobRuns = [];
  for (let i = 0; i < count; i++) {
    const ready = await readyOne(jobs > 0);
    samples.push(ready);
    if (jobs > 0) jobRuns.push(await runJobs(ready));
  }
  const cpu = (selfCpuMs() - cpu0) / count;
  console.log(JSON.stringify({
    cpu,
    walls: samples.map((s) => s.wall),
    threads: samples.map((s) => s.thread),
    jobWalls: jobRuns.map((r) => r.walls),
    jobThreads: jobRuns.map((r) => r.threads),
  }));
  Deno.exit(0);
}

if (values.child) await child();
else {
  // The checkout's own sandbox-process flags (V8's included), so an A/B of them compares.
  const { childRunFlags } = await import(`file://${root}/src/sandbox/child_run.ts`) as {
    childRunFlags(options: { configPath?: string; heapMb: number }): string[];
  };
  const extra = values["v8-flags"];
  const flags = childRunFlags({ configPath: `${root}/deno.json`, heapMb: 256 }).map((f) =>
    extra && f.startsWith("--v8-flags=") ? `${f},${extra}` : f
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      ...flags,
      // Only with every permission may a program read `/proc/self/stat`.
      "--allow-all",
      new URL(import.meta.url).pathname,
      "--child",
      "--root",
      root,
      "--workers",
      String(count),
      ...(values.bare ? ["--bare"] : []),
      ...(values.agent ? ["--agent", values.agent] : []),
      ...(jobs > 0 ? ["--jobs", String(jobs), "--gap-ms", String(gapMs)] : []),
      ...(values["warm-runs"] ? ["--warm-runs", values["warm-runs"]] : []),
    ],
    stdout: "piped",
  }).output();
  const { cpu, walls, threads, jobWalls, jobThreads } = JSON.parse(
    new TextDecoder().decode(out.stdout),
  ) as {
    cpu: number;
    walls: number[];
    threads: number[];
    jobWalls: number[][];
    jobThreads: number[][];
  };
  const wall = stats(walls);
  const sorted = [...threads as number[]].sort((a, b) => a - b);
  const thread = (p: number) => fmt(percentile(sorted, p));
  console.log(
    `${root}${values.bare ? " (bare)" : ""}${extra ? ` (+${extra})` : ""}: ${count} workers; ` +
      `worker thread CPU to warmed ` +
      `p25 ${thread(25)} p50 ${thread(50)} p75 ${thread(75)} ms; ` +
      `process CPU ${fmt(cpu)} ms/worker${
        jobs > 0 ? " (its jobs included)" : ""
      }; new Worker → warmed p50 ${fmt(wall.p50)} ms, ` +
      `p99 ${fmt(wall.p99)} ms`,
  );
  for (let j = 0; j < jobs; j++) {
    const p50 = (rows: number[][]) => fmt(stats(rows.map((r) => r[j])).p50 * 1000, 0);
    console.log(
      `  job ${j + 1}: start → result p50 ${p50(jobWalls)} µs, worker thread CPU p50 ` +
        `${p50(jobThreads)} µs`,
    );
  }
}
