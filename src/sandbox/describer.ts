/**
 * Describes agent modules in short-lived deno processes, so that whatever a
 * module does at import (a busy loop, a heap bomb, a throw) happens in a
 * process the runtime kills after a timeout, never in the runtime itself.
 * Each process may read only the agents folder, runs `--cached-only`, has
 * no net, env or run permission and a heap cap.
 *
 * @module
 */
import { childEnv } from "./child_env.ts";
import { childRunFlags } from "./child_run.ts";
import { findDenoConfig } from "./deno_config.ts";
import { cacheModules } from "./module_cache.ts";
import { describerMainUrl } from "./host/describe_main.ts";

/** How a describer process runs. */
export interface DescriberOptions {
  /** The deno executable. */
  denoPath: string;
  /** The `deno.json` agents resolve their imports with, if any. */
  configPath?: string;
  /** The agents folder, the one path the process may read. */
  agentsDir: string;
  /** How long one module may take to describe itself (ms). */
  timeoutMs: number;
  /** Heap cap of the process, MiB. */
  heapMb: number;
}

/** What a module said it is, before the runtime checks it. */
export interface RawDescription {
  /** Name, as the module gave it. */
  name: unknown;
  /** Version, as the module gave it. */
  version: unknown;
  /** Description, as the module gave it. */
  description?: unknown;
  /** `reuse`, as the module gave it. */
  reuse?: unknown;
  /** `concurrency`, as the module gave it. */
  concurrency?: unknown;
}

/** The module every describer process imports before the agent. */
const DESCRIBE_MAIN = new URL("./host/describe_main.ts", import.meta.url).href;

/** Output a describer may print before it is treated as a flood and killed. */
const MAX_OUTPUT_BYTES = 1024 * 1024;

/**
 * Loads one agent module in a describer process and returns what it says it is.
 *
 * @param url file URL of the module
 * @param options how the process runs
 * @returns the module's raw description
 * @throws {Error} saying why the module cannot be described (timeout, heap, a throw, not an agent)
 */
export async function describeInProcess(
  url: string,
  options: DescriberOptions,
): Promise<RawDescription> {
  const child = new Deno.Command(options.denoPath, {
    args: [
      ...childRunFlags(options),
      `--allow-read=${options.agentsDir}`,
      describerMainUrl(url),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: { ...childEnv(), NO_COLOR: "1" },
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    kill(child);
  }, options.timeoutMs);
  try {
    const [out, err, status] = await Promise.all([
      readCapped(child.stdout, () => kill(child)),
      readCapped(child.stderr, () => kill(child)),
      child.status,
    ]);
    if (timedOut) {
      throw new Error(`did not describe itself within ${options.timeoutMs / 1000} s; killed`);
    }
    if (/heap out of memory|Reached heap limit|allocation failed/i.test(err)) {
      throw new Error(`exhausted the ${options.heapMb} MiB describe heap at import; killed`);
    }
    const report = lastReport(out);
    if (report) return report;
    // Deno's own account of an uncaught error, without its stack.
    const why = err.split("\n").find((l) => l.startsWith("error: ")) ??
      `exit code ${status.code}`;
    throw new Error(`describer process failed: ${why.slice(0, 500)}`);
  } finally {
    clearTimeout(timer);
  }
}

function kill(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch {
    // already gone
  }
}

/** Reads a stream as text, up to a cap; past it the process is killed. */
async function readCapped(stream: ReadableStream<Uint8Array>, flood: () => void): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    if (text.length + chunk.length > MAX_OUTPUT_BYTES) {
      flood();
      continue;
    }
    text += chunk;
  }
  return text;
}

/** The describer's report: the last line that is one; the agent's own output may precede it. */
function lastReport(out: string): RawDescription | undefined {
  const lines = out.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i].startsWith('{"described":')) continue;
    try {
      return JSON.parse(lines[i]).described;
    } catch {
      // not ours
    }
  }
  return undefined;
}

/** How much of a skipped module's reason is kept: one line an operator reads at start. */
const MAX_REASON = 300;

/**
 * Why a module could not be described, as one line an operator can read:
 * without Deno's `error: Uncaught (in worker "")` prefixes, without the
 * describer's `data:` main-module URL (base64 of generated code, which tells
 * the operator nothing), and without stack lines.
 *
 * @param message the error's message
 * @returns one line
 * @example
 * ```ts
 * import { oneLineReason } from "./describer.ts";
 * oneLineReason('describer process failed: error: Uncaught (in promise) Error: boom\n    at data:application/typescript;base64,aW1w:1:7');
 * // "threw at import: Error: boom"
 * ```
 */
export function oneLineReason(message: string): string {
  const first = message.split("\n").find((l) => l.trim() !== "") ?? message;
  let line = first
    .replace(/^describer process failed: /, "")
    .replace(/^error: /, "")
    .replace(/data:[^\s"'`)]+/g, "(the describer's main module)")
    .replace(/\s+/g, " ")
    .trim();
  const uncaught = /^Uncaught (\(in [^)]*\) )?/;
  if (uncaught.test(line)) line = `threw at import: ${line.replace(uncaught, "")}`;
  return line.length > MAX_REASON ? `${line.slice(0, MAX_REASON - 1)}…` : line;
}

/**
 * Readies describer processes to resolve modules as this process does: finds
 * this process's `deno.json` and, when the package is remote, caches the
 * describer's own modules (it runs `--cached-only`).
 *
 * @param timeoutMs how long one module may take
 * @param heapMb heap cap of each describer process
 * @returns options for {@linkcode describeInProcess}, less the agents folder
 */
export async function prepareDescriber(
  timeoutMs: number,
  heapMb: number,
): Promise<Omit<DescriberOptions, "agentsDir">> {
  const denoPath = Deno.execPath();
  const configPath = await findDenoConfig(Deno.mainModule);
  await cacheModules([DESCRIBE_MAIN], { denoPath, configPath });
  return { denoPath, configPath, timeoutMs, heapMb };
}
