/**
 * What the warm pool holds after a burst, and what it gives back once the
 * burst's demand has gone: a runtime (`bench/_events_child.ts runtime
 * <sandbox>` of the checkout at `--root`) serves one burst of 50 sessions ×
 * ticker of 20 events, then sits idle; at each sample time the resident set
 * (RSS, and PSS, which splits pages shared between processes) of the runtime
 * and its sandbox processes is read from /proc, with the number of sandbox
 * processes. Run it against two checkouts to compare their pools.
 *
 * With `--spares 0,1,2,4,8` it measures what a spare worker costs instead:
 * one sandbox process, started as the launcher starts it, loads `--agent`
 * (default the echo agent) in its worker, then is asked for each count of
 * spares in turn; once it holds them and its memory has settled, the RSS,
 * PSS and private bytes of the process are read from
 * `/proc/<pid>/smaps_rollup`, beside the resident set the process reported
 * itself (what the runtime sees) and what the runtime charges each spare
 * from it. `--rounds` fresh processes are measured, and the cost of one
 * spare is the least-squares slope over the counts.
 *
 * ```sh
 * deno run -A bench/pool_memory.ts --sandbox process [--root /work/wt/base] [--at 2,30,70]
 * deno run -A bench/pool_memory.ts --spares 0,1,2,4,8 [--agent bench/agents/heavy_imports.ts] [--rounds 3]
 * ```
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { BenchClient, expectSuccess, ROOT } from "./_util.ts";
import { RUN_FLAGS } from "../src/cli/flags.ts";
import { LoneProcesses, until } from "../testing/sandbox_process.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    sandbox: { type: "string", default: "process" },
    root: { type: "string", default: ROOT },
    at: { type: "string", default: "2,30,70" },
    sessions: { type: "string", default: "50" },
    spares: { type: "string" },
    agent: { type: "string", default: "agents/echo/v1.ts" },
    rounds: { type: "string", default: "3" },
    settle: { type: "string", default: "2000" },
  },
});
const root = args.root;
const sessions = Number(args.sessions);
const at = args.at.split(",").map(Number);

/** RSS, PSS and private bytes (KiB) of a process, from smaps_rollup. */
async function memOf(pid: number): Promise<{ rss: number; pss: number; priv: number }> {
  const text = await Deno.readTextFile(`/proc/${pid}/smaps_rollup`).catch(() => "");
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
  return {
    rss: field("Rss"),
    pss: field("Pss"),
    priv: field("Private_Clean") + field("Private_Dirty"),
  };
}

/** The processes whose parent is `pid`, recursively. */
async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  const parents = new Map<number, number[]>();
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const stat = await Deno.readTextFile(`/proc/${e.name}/stat`).catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(") ") + 2).split(" ")[1]);
    parents.set(ppid, [...(parents.get(ppid) ?? []), Number(e.name)]);
  }
  const walk = (p: number) => {
    for (const c of parents.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** One ticker of 20 events, again after a moment while the sandbox refuses it as busy. */
async function burstJob(client: BenchClient): Promise<void> {
  while (true) {
    const run = await client.submit("ticker", { count: 20, interval_ms: 0 }).done;
    if (run.terminal?.payload?.details?.cap !== "sandbox_busy") return void expectSuccess(run);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The burst, then the pool's memory at each sample time. */
async function burstRun(): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...RUN_FLAGS,
      "--config",
      `${root}/deno.json`,
      `${root}/bench/_events_child.ts`,
      "runtime",
      args.sandbox,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  while (!buffered.includes("\n")) buffered += (await reader.read()).value ?? "";
  const url = /URL (\S+)/.exec(buffered)![1];

  const clients = await Promise.all(
    Array.from({ length: sessions }, () => BenchClient.connect(url)),
  );
  const t0 = performance.now();
  await Promise.all(clients.map((c) => burstJob(c)));
  const burstEnd = performance.now();
  console.log(
    `root ${root} sandbox ${args.sandbox}: burst of ${sessions} in ${Math.round(burstEnd - t0)} ms`,
  );
  for (const secs of at) {
    const wait = burstEnd + secs * 1000 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const kids = (await descendants(child.pid)).filter((p) => p !== child.pid);
    const runtime = await memOf(child.pid);
    let rss = 0;
    let pss = 0;
    for (const p of kids) {
      const m = await memOf(p);
      rss += m.rss;
      pss += m.pss;
    }
    const mib = (k: number) => (k / 1024).toFixed(0);
    console.log(
      `+${secs} s idle: runtime RSS ${mib(runtime.rss)} MiB PSS ${mib(runtime.pss)} MiB; ` +
        `${kids.length} child processes RSS ${mib(rss)} MiB PSS ${mib(pss)} MiB; ` +
        `all PSS ${mib(runtime.pss + pss)} MiB`,
    );
  }
  await Promise.all(clients.map((c) => c.close()));
  child.kill("SIGTERM");
  await child.status;
}

/** Least-squares slope of `ys` over `xs`. */
function slope(xs: number[], ys: number[]): number {
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * One sandbox process per round, as the launcher spawns it (same flags, same
 * environment, `--cached-only`), with its worker loaded, asked for each count
 * of spares in turn.
 */
async function sparesRun(counts: number[]): Promise<void> {
  const agentUrl = new URL(args.agent, `file://${Deno.realPathSync(root)}/`).href;
  await using lone = await LoneProcesses.create(root, [agentUrl]);
  const settle = Number(args.settle);
  const mib = (k: number) => (k / 1024).toFixed(1);
  console.log(
    `agent ${args.agent} on ${Deno.build.target}, ${navigator.hardwareConcurrency} cores, ` +
      `${(Deno.systemMemoryInfo().total / 1024 ** 3).toFixed(1)} GiB, load ${Deno.loadavg()[0]}`,
  );
  console.log(
    "round spares RSS_MiB PSS_MiB private_MiB self_reported_RSS_MiB charged_per_spare_MiB",
  );
  const rows: Array<{ n: number; rss: number; pss: number; priv: number; self: number }> = [];
  for (let round = 1; round <= Number(args.rounds); round++) {
    const proc = await lone.start(agentUrl);
    for (const n of counts) {
      proc.spare(n);
      await until(() => proc.spares === n, 60_000, `${n} spares`);
      await new Promise((r) => setTimeout(r, settle));
      const m = await memOf(proc.pid!);
      const self = (proc.rssBytes ?? 0) / 1024;
      rows.push({ n, ...m, self });
      const charged = proc.spareBytes === undefined ? "-" : mib(proc.spareBytes / 1024);
      console.log(
        `${round} ${n} ${mib(m.rss)} ${mib(m.pss)} ${mib(m.priv)} ${mib(self)} ${charged}`,
      );
    }
    proc.kill();
    await proc.process.status;
  }
  const xs = rows.map((r) => r.n);
  const per = (k: "rss" | "pss" | "priv" | "self") => mib(slope(xs, rows.map((r) => r[k])));
  const line = `per spare (slope over ${rows.length} samples): RSS ${per("rss")} MiB, ` +
    `PSS ${per("pss")} MiB, private ${per("priv")} MiB, self-reported RSS ${per("self")} MiB`;
  console.log(line);
}

if (args.spares !== undefined) await sparesRun(args.spares.split(",").map(Number));
else await burstRun();
