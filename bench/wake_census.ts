/**
 * Thread wake-ups per reused echo job, by thread: `arcp serve` of one
 * checkout, or of two side by side, `echo-reused` jobs on one session back
 * to back, then paced (one every `--gap` ms), then back to back on 8
 * sessions of 4 principals, the two servers' jobs
 * interleaved. For every thread of the runtime process and of its sandbox
 * processes it reads `voluntary_ctxt_switches` (a thread blocked and was
 * woken again: one wake-up), `nonvoluntary_ctxt_switches` and time on CPU
 * from `/proc/<pid>/task/<tid>/status` and `schedstat` before and after each phase,
 * and prints them per job, grouped by process role and thread name. A
 * paced phase's figures have an idle phase of the same length subtracted
 * (what the servers' threads do with no job: timers, memory reports, beats).
 * Threads that start during a phase count from zero; one that ends during
 * it loses its counts (the printout says how many did). Reports; asserts
 * nothing.
 *
 * ```sh
 * deno run -A --unstable-kv --unstable-worker-options bench/wake_census.ts --base /work/wt/base
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
  readProcStat,
  ROOT,
  spawnBenchServe,
  stats,
} from "./_util.ts";
import { FIGURE11_SERVE_FLAGS } from "./sandbox_figures.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string" },
    base: { type: "string" },
    jobs: { type: "string" },
    paced: { type: "string" },
    gap: { type: "string" },
    "per-session": { type: "string" },
    agent: { type: "string" },
    only: { type: "string" },
    "idle-sec": { type: "string" },
  },
});
const roots = [values.root ?? ROOT, ...(values.base ? [values.base] : [])];
const jobs = Number(values.jobs ?? 1000);
const pacedJobs = Number(values.paced ?? 200);
const gapMs = Number(values.gap ?? 50);
const perSession = Number(values["per-session"] ?? 250);
const SESSIONS = 8;
const agent = values.agent ?? "echo-reused";
const only = new Set((values.only ?? "idle,b2b,paced,eight").split(","));
const idleSec = Number(values["idle-sec"] ?? 10);

/** One thread's counters at one moment. */
interface ThreadSample {
  group: string;
  voluntary: number;
  involuntary: number;
  cpuMs: number;
}

/** Every thread of a process and of its descendants, keyed by `pid/tid`. */
type Snapshot = Map<string, ThreadSample>;

/** The pids of a process's children, from every thread's `children` file. */
function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      const text = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`).trim();
      if (text) out.push(...text.split(" ").map(Number));
    }
  } catch {
    // the process ended while listed
  }
  return out;
}

/** The number after `key:` in a `/proc/…/status` text. */
function statusField(text: string, key: string): number {
  const m = text.match(new RegExp(`^${key}:\\s+(\\d+)`, "m"));
  return m ? Number(m[1]) : 0;
}

/** A thread name with its varying digits folded, so pool threads group together. */
function threadKind(name: string, isMain: boolean): string {
  if (isMain) return "main";
  return name.replace(/\d+$/, "#");
}

/** Reads every thread of `pid` and its descendants. */
function snapshot(pid: number): Snapshot {
  const out: Snapshot = new Map();
  const visit = (p: number, role: string) => {
    let tasks: Deno.DirEntry[];
    try {
      tasks = [...Deno.readDirSync(`/proc/${p}/task`)];
    } catch {
      return;
    }
    for (const task of tasks) {
      const base = `/proc/${p}/task/${task.name}`;
      const stat = readProcStat(`${base}/stat`);
      let status: string, schedstat: string;
      try {
        status = Deno.readTextFileSync(`${base}/status`);
        schedstat = Deno.readTextFileSync(`${base}/schedstat`);
      } catch {
        continue;
      }
      if (!stat) continue;
      out.set(`${p}/${task.name}`, {
        group: `${role} ${threadKind(stat.name, Number(task.name) === p)}`,
        voluntary: statusField(status, "voluntary_ctxt_switches"),
        involuntary: statusField(status, "nonvoluntary_ctxt_switches"),
        // Time on CPU in ns (schedstat), finer than stat's clock ticks.
        cpuMs: Number(schedstat.split(" ")[0]) / 1e6,
      });
    }
    for (const child of children(p)) visit(child, "sandbox");
  };
  visit(pid, "runtime");
  return out;
}

/** Per-group totals of what changed between two snapshots. */
interface Census {
  groups: Map<string, { voluntary: number; involuntary: number; cpuMs: number; threads: number }>;
  ended: number;
}

/** Counts what each group's threads did between `before` and `after`. */
function census(before: Snapshot, after: Snapshot): Census {
  const groups: Census["groups"] = new Map();
  for (const [key, a] of after) {
    const b = before.get(key) ?? { voluntary: 0, involuntary: 0, cpuMs: 0 };
    const g = groups.get(a.group) ?? { voluntary: 0, involuntary: 0, cpuMs: 0, threads: 0 };
    g.voluntary += a.voluntary - b.voluntary;
    g.involuntary += a.involuntary - b.involuntary;
    g.cpuMs += a.cpuMs - b.cpuMs;
    if (a.voluntary !== b.voluntary || a.cpuMs !== b.cpuMs) g.threads++;
    groups.set(a.group, g);
  }
  let ended = 0;
  for (const key of before.keys()) if (!after.has(key)) ended++;
  return { groups, ended };
}

/** Prints a census per job, minus `idle` scaled to the same duration. */
function print(
  label: string,
  root: string,
  c: Census,
  n: number,
  latencies: number[],
  idle?: { census: Census; scale: number },
): void {
  const s = stats(latencies);
  const unit = latencies.length > 0 ? "job" : "s";
  console.log(
    `\n${label} ${root}: ` +
      (latencies.length > 0
        ? `${n} jobs, submit→result p50 ${fmt(s.p50)} ms, p99 ${fmt(s.p99)}`
        : `no jobs, per second over ${fmt(n)} s`) +
      (c.ended ? `; ${c.ended} threads ended during the phase` : "") +
      (idle ? " (idle of the same length subtracted)" : ""),
  );
  console.log(
    `  group                      wake-ups/${unit}    involuntary/${unit}    CPU µs/${unit}  threads`,
  );
  let tv = 0, ti = 0, tc = 0;
  const names = [...c.groups.keys()].sort();
  for (const name of names) {
    const g = c.groups.get(name)!;
    const i = idle?.census.groups.get(name);
    const sub = (k: "voluntary" | "involuntary" | "cpuMs") => g[k] - (i ? i[k] * idle!.scale : 0);
    const v = sub("voluntary") / n, inv = sub("involuntary") / n, cpu = sub("cpuMs") * 1000 / n;
    if (Math.abs(v) < 0.05 && Math.abs(cpu) < 5) continue;
    tv += v;
    ti += inv;
    tc += cpu;
    console.log(
      `  ${name.padEnd(26)} ${fmt(v, 2).padStart(12)} ${fmt(inv, 2).padStart(16)} ${
        fmt(cpu, 0).padStart(11)
      } ${String(g.threads).padStart(8)}`,
    );
  }
  console.log(
    `  ${"total".padEnd(26)} ${fmt(tv, 2).padStart(12)} ${fmt(ti, 2).padStart(16)} ${
      fmt(tc, 0).padStart(11)
    }`,
  );
}

/**
 * Runs `rounds` jobs on each of a server's sessions (`clients[server][session]`),
 * the servers taking turns within every session's sequence, each server's jobs
 * of a session `gap` ms apart.
 */
async function phase(
  servers: ChildServerLike[],
  clients: BenchClient[][],
  rounds: number,
  gap: number,
): Promise<{ censuses: Census[]; latencies: number[][]; ms: number }> {
  const before = servers.map((s) => snapshot(s.process.pid));
  const latencies = servers.map(() => [] as number[]);
  const start = performance.now();
  await Promise.all(clients[0].map(async (_, c) => {
    for (let i = 0; i < rounds; i++) {
      const roundStart = performance.now();
      for (let k = 0; k < servers.length; k++) {
        const which = (i + k + c) % servers.length;
        const t0 = performance.now();
        await clients[which][c].run(agent, { i });
        latencies[which].push(performance.now() - t0);
        if (gap > 0) {
          // Each server's jobs stay `gap` apart; the servers' turns sit between.
          const next = roundStart + (k + 1) * gap / servers.length;
          const wait = next - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
      }
    }
  }));
  const ms = performance.now() - start;
  const censuses = servers.map((s, k) => census(before[k], snapshot(s.process.pid)));
  return { censuses, latencies, ms };
}

const servers: ChildServerLike[] = [];
try {
  for (const root of roots) servers.push(await spawnBenchServe([...FIGURE11_SERVE_FLAGS], root));
  const clients = await Promise.all(servers.map(async (s) => [await BenchClient.connect(s.url)]));
  await phase(servers, clients, 200, 0);
  if (only.has("idle")) {
    // What the servers do with no job, after a warm-up: timers, memory reports, beats, polls.
    await new Promise((r) => setTimeout(r, 2000));
    const before = servers.map((s) => snapshot(s.process.pid));
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, idleSec * 1000));
    const sec = (performance.now() - t0) / 1000;
    servers.forEach((s, k) =>
      print("idle", roots[k], census(before[k], snapshot(s.process.pid)), sec, [])
    );
  }
  if (only.has("b2b")) {
    const b2b = await phase(servers, clients, jobs, 0);
    roots.forEach((root, k) =>
      print("back to back", root, b2b.censuses[k], jobs, b2b.latencies[k])
    );
  }
  if (only.has("paced")) {
    await phase(servers, clients, 20, gapMs);
    const paced = await phase(servers, clients, pacedJobs, gapMs);
    roots.forEach((root, k) =>
      print(
        `paced, ${gapMs} ms apart, idle included`,
        root,
        paced.censuses[k],
        pacedJobs,
        paced.latencies[k],
      )
    );
    const idleBefore = servers.map((s) => snapshot(s.process.pid));
    const idleStart = performance.now();
    await new Promise((r) => setTimeout(r, paced.ms));
    const idleMs = performance.now() - idleStart;
    const idle = servers.map((s, k) => census(idleBefore[k], snapshot(s.process.pid)));
    roots.forEach((root, k) =>
      print(`paced, ${gapMs} ms apart`, root, paced.censuses[k], pacedJobs, paced.latencies[k], {
        census: idle[k],
        scale: paced.ms / idleMs,
      })
    );
  }
  await Promise.all(clients.flat().map((c) => c.close()));
  if (only.has("eight")) {
    const many = await Promise.all(servers.map((s) => connectSpread(s.url, SESSIONS)));
    await phase(servers, many, 20, 0);
    const eight = await phase(servers, many, perSession, 0);
    roots.forEach((root, k) =>
      print(
        `${SESSIONS} sessions`,
        root,
        eight.censuses[k],
        perSession * SESSIONS,
        eight.latencies[k],
      )
    );
    await Promise.all(many.flat().map((c) => c.close()));
  }
} finally {
  await Promise.all(servers.map((s) => s.stop()));
}
