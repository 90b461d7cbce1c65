/**
 * Figure 9's measurement, run in a process of its own so that the runtime's
 * resident set is its own and not the bench process's, which carries the
 * garbage of every figure before it: starts a runtime (`--sandbox process`
 * or `worker`), measures this process plus its sandbox processes, runs
 * `--jobs` jobs of a sleeper (`--agent`, default `sleeper`, from `--agents`), waits until each has reported `sleeping`, measures
 * again and prints both as one JSON line.
 *
 * ```sh
 * deno run -A bench/memory_probe.ts --sandbox process --jobs 16
 * ```
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { BenchClient, denoChildren, ROOT, rssKiB, startBenchServer } from "./_util.ts";
import { RUN_FLAGS } from "../src/cli/flags.ts";

/** One measurement: this process (the runtime) and its sandbox processes, KiB. */
export interface Footprint {
  /** The runtime process. */
  runtimeKiB: number;
  /** Each `deno` child (sandbox processes, idle pool ones included). */
  children: number[];
}

/** What the probe prints. */
export interface MemoryProbe {
  /** Before the sleepers, the pool filled. */
  before: Footprint;
  /** With every sleeper running. */
  during: Footprint;
  /** Whether every sleeper reported `sleeping` in time. */
  allRunning: boolean;
}

/**
 * Runs this probe in a fresh runtime process (the caller's resident set
 * carries every figure before it) and returns what it measured.
 *
 * @param args the probe's flags (`--jobs`, `--sandbox`, `--agent`, `--agents`)
 * @returns before and during
 */
export async function probeMemory(args: string[]): Promise<MemoryProbe> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_FLAGS, `${ROOT}/bench/memory_probe.ts`, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  return JSON.parse(line) as MemoryProbe;
}

/**
 * The runtime and its sandbox processes together.
 *
 * @param f a footprint
 * @returns its total resident set, KiB
 */
export function totalKiB(f: Footprint): number {
  return f.runtimeKiB + f.children.reduce((x, y) => x + y, 0);
}

async function footprint(): Promise<Footprint> {
  return {
    runtimeKiB: await rssKiB(Deno.pid),
    children: (await denoChildren()).map((c) => c.rssKiB),
  };
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      sandbox: { type: "string" },
      jobs: { type: "string" },
      agent: { type: "string" },
      agents: { type: "string" },
    },
    strict: true,
  });
  const sandbox = values.sandbox === "worker" ? "worker" : "process";
  const jobs = Number(values.jobs ?? 16);
  const agent = values.agent ?? "sleeper";
  const server = await startBenchServer({
    sandbox,
    ...(values.agents ? { agentsDir: values.agents } : {}),
    jobs: { maxJobsPerPrincipal: jobs + 10 },
  });
  const client = await BenchClient.connect(server.url);
  await client.run(agent, { ms: 0 }); // the agent's modules loaded and compiled
  await settle(1500); // the pool refilled, the runtime settled
  const before = await footprint();
  const runs = Array.from({ length: jobs }, () => client.submit(agent, { ms: 600_000 }));
  // A sleeper's `sleeping` status means its agent runs in its sandbox.
  const deadline = performance.now() + 60_000;
  while (!runs.every((r) => r.firstEventAt !== undefined) && performance.now() < deadline) {
    await settle(20);
  }
  const allRunning = runs.every((r) => r.firstEventAt !== undefined);
  await settle(1500); // the pool refilled behind them
  const during = await footprint();
  console.log(JSON.stringify({ before, during, allRunning } satisfies MemoryProbe));
  await client.close();
  await server.close(true);
}
