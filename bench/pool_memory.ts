/**
 * What the warm pool holds after a burst, and what it gives back once the
 * burst's demand has gone: a runtime (`bench/_events_child.ts runtime
 * <sandbox>` of the checkout at `--root`) serves one burst of 50 sessions ×
 * ticker of 20 events, then sits idle; at each sample time the resident set
 * (RSS, and PSS, which splits pages shared between processes) of the runtime
 * and its sandbox processes is read from /proc, with the number of sandbox
 * processes. Run it against two checkouts to compare their pools.
 *
 * ```sh
 * deno run -A bench/pool_memory.ts --sandbox process [--root /work/wt/base] [--at 2,30,70]
 * ```
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { BenchClient, expectSuccess, ROOT } from "./_util.ts";
import { RUN_FLAGS } from "../src/cli/flags.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    sandbox: { type: "string", default: "process" },
    root: { type: "string", default: ROOT },
    at: { type: "string", default: "2,30,70" },
    sessions: { type: "string", default: "50" },
  },
});
const root = args.root;
const sessions = Number(args.sessions);
const at = args.at.split(",").map(Number);

/** RSS and PSS (KiB) of a process, from smaps_rollup. */
async function memOf(pid: number): Promise<{ rss: number; pss: number }> {
  const text = await Deno.readTextFile(`/proc/${pid}/smaps_rollup`).catch(() => "");
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
  return { rss: field("Rss"), pss: field("Pss") };
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
