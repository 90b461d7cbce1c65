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
 * ```
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

const { values } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string" },
    fresh: { type: "boolean" },
    jobs: { type: "string" },
    "gap-ms": { type: "string" },
  },
});
const root = values.root ?? ROOT;
const fresh = values.fresh === true;
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

const launcher = await Launcher.create(fresh ? {} : { warmPool: 0 });
const sandbox = new Supervisor(launcher);
const agentUrl = `file://${ROOT}/bench/agents/${fresh ? "echo_fresh" : "echo_reused"}.ts`;
const sharing: Sharing | undefined = fresh
  ? undefined
  : { concurrency: 1, maxJobs: 1_000_000, idleSec: 60 };
let next = 0;

/** One job through the leg; resolves with its latency (ms). */
async function one(): Promise<number> {
  const t0 = performance.now();
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  await sandbox.start({
    jobId: `job_${next++}`,
    principal: "bench",
    traceId: "0123456789abcdef0123456789abcdef",
    agentUrl,
    input: { i: next },
    lease: {},
    ...(sharing ? { sharing } : {}),
  }, {
    onEvents: () => Promise.resolve(),
    onCall: () => Promise.resolve(null),
    onChunk: () => Promise.resolve(),
    onChunkEnd: () => {},
    onResult: () => resolve(),
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
  const self0 = cpuOf(Deno.pid).own;
  const sandbox0 = sandboxCpuMs();
  const samples: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < jobs; i++) {
    if (gapMs > 0) await pause();
    samples.push(await one());
  }
  const wall = performance.now() - t0;
  // This process's first: reading every /proc entry costs CPU of its own.
  const self1 = cpuOf(Deno.pid).own;
  const sandbox1 = sandboxCpuMs();
  const s = stats(samples);
  const perJob = (ms: number) => `${fmt((ms / jobs) * 1000, 0)} µs`;
  console.log(
    `${fresh ? "fresh" : "reused"} echo, ${jobs} jobs ${gapMs} ms apart (${root}): ` +
      `leg p50 ${fmt(s.p50 * 1000, 0)} µs, p90 ${fmt(s.p90 * 1000, 0)} µs, ` +
      `p99 ${fmt(s.p99 * 1000, 0)} µs; ${fmt(jobs / (wall / 1000), 0)} jobs/s; CPU per job: ` +
      `sandbox processes ${perJob(sandbox1 - sandbox0)}, this process ${perJob(self1 - self0)}` +
      (gapMs > 0 ? " (its timers between jobs included)" : ""),
  );
} finally {
  await sandbox.close();
}
