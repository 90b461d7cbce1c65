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
 * ```sh
 * deno run -A bench/worker_ready.ts                   # echo-fresh, this checkout
 * deno run -A bench/worker_ready.ts --root /work/wt/base
 * deno run -A bench/worker_ready.ts --bare            # floor: a worker that only says ready
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
  },
});
const root = values.root ?? ROOT;
const count = Number(values.workers ?? 60);

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

/** The child: readies `count` workers in turn; prints one JSON line. */
async function child(): Promise<void> {
  const { workerEntryUrl } = await import(`file://${root}/src/sandbox/worker/entry.ts`) as {
    workerEntryUrl(agentUrl: string): string;
  };
  const agentUrl = `file://${root}/${values.agent ?? "bench/agents/echo_fresh.ts"}`;
  const bare = `data:application/javascript,${encodeURIComponent("postMessage('ready');")}`;
  const readyOne = (): Promise<{ wall: number; thread: number }> => {
    const before = threads();
    const t0 = performance.now();
    const worker = new Worker(values.bare ? bare : workerEntryUrl(agentUrl), {
      type: "module",
      name: "agent",
      // deno-lint-ignore no-explicit-any
      deno: { permissions: { read: false, write: false, net: false } } as any,
    });
    return new Promise((resolve, reject) => {
      worker.onerror = (e) => reject(new Error(e.message));
      worker.onmessage = (e: MessageEvent) => {
        const msg = typeof e.data === "string" && e.data.startsWith("{")
          ? JSON.parse(e.data)
          : e.data;
        if (values.bare || (msg?.t === "result" && msg.j === -1)) {
          const wall = performance.now() - t0;
          let thread = 0;
          for (const tid of threads()) if (!before.has(tid)) thread += threadCpuMs(tid);
          worker.terminate();
          resolve({ wall, thread });
        } else if (msg?.t === "ready") {
          worker.postMessage(JSON.stringify({
            t: "start",
            j: -1,
            jobId: "",
            traceId: "",
            input: null,
            lease: {},
            beatMs: 1000,
          }));
        }
      };
    });
  };
  // One first, outside the count: the process's own first-use costs.
  await readyOne();
  const cpu0 = selfCpuMs();
  const samples = [];
  for (let i = 0; i < count; i++) samples.push(await readyOne());
  const cpu = (selfCpuMs() - cpu0) / count;
  console.log(JSON.stringify({
    cpu,
    walls: samples.map((s) => s.wall),
    threads: samples.map((s) => s.thread),
  }));
  Deno.exit(0);
}

if (values.child) await child();
else {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--unstable-worker-options",
      "--cached-only",
      "--config",
      `${root}/deno.json`,
      "--v8-flags=--max-old-space-size=256,--single-threaded-gc",
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
    ],
    stdout: "piped",
  }).output();
  const { cpu, walls, threads } = JSON.parse(new TextDecoder().decode(out.stdout));
  const wall = stats(walls);
  const sorted = [...threads as number[]].sort((a, b) => a - b);
  const thread = (p: number) => fmt(percentile(sorted, p));
  console.log(
    `${root}${values.bare ? " (bare)" : ""}: ${count} workers; worker thread CPU to warmed ` +
      `p25 ${thread(25)} p50 ${thread(50)} p75 ${thread(75)} ms; ` +
      `process CPU ${fmt(cpu)} ms/worker; new Worker → warmed p50 ${fmt(wall.p50)} ms, ` +
      `p99 ${fmt(wall.p99)} ms`,
  );
}
