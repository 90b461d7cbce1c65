/**
 * The default memory ceiling of a sandbox process: a bound on its resident
 * set, which counts ArrayBuffers and wasm memory, unlike the V8 heap cap.
 *
 * @module
 */
import { RSS_REPORT_STEP } from "./host/protocol.ts";

/** Smallest default ceiling, MiB. */
const MIN_DEFAULT_MB = 256;
/** Largest default ceiling, MiB. */
const MAX_DEFAULT_MB = 4096;

/**
 * The default ceiling of each sandbox process: an eighth of the machine's
 * memory, clamped to 256 MiB – 4 GiB, and never below the heap cap plus
 * 128 MiB (a process's baseline), so the heap cap still bites first for
 * heap growth.
 *
 * @example
 * ```ts
 * import { defaultMemoryMb } from "./memory_ceiling.ts";
 * console.log(defaultMemoryMb(512) >= 640); // true
 * ```
 *
 * @param heapMb the heap cap of each process, MiB
 * @param totalBytes the machine's memory (default: `Deno.systemMemoryInfo().total`)
 * @returns the ceiling, MiB
 */
export function defaultMemoryMb(heapMb: number, totalBytes?: number): number {
  const total = totalBytes ?? machineBytes();
  const eighth = Math.floor(total / 8 / 1024 / 1024);
  const clamped = Math.min(MAX_DEFAULT_MB, Math.max(MIN_DEFAULT_MB, eighth));
  return Math.max(clamped, heapMb + 128);
}

/** The machine's memory, bytes (0 where it cannot be read). */
function machineBytes(): number {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return 0;
  }
}

/** What one idle sandbox process holds, MiB (measured ~50; rounded up). */
const IDLE_PROCESS_MB = 64;

/**
 * The default most sandbox processes the warm pool keeps ready: as many as
 * a sixteenth of the machine's memory holds at {@linkcode IDLE_PROCESS_MB}
 * each, clamped to 8 – 32. Processes that served a job serve only their
 * principal's next ones, so a pool smaller than the principals active at
 * once starts (and kills) a process for most of their jobs.
 *
 * @example
 * ```ts
 * import { defaultWarmMax } from "./memory_ceiling.ts";
 * console.log(defaultWarmMax(24 * 1024 ** 3)); // 24
 * ```
 *
 * @param totalBytes the machine's memory (default: `Deno.systemMemoryInfo().total`)
 * @returns the count
 */
export function defaultWarmMax(totalBytes?: number): number {
  const total = totalBytes ?? machineBytes();
  const fit = Math.floor(total / 16 / 1024 / 1024 / IDLE_PROCESS_MB);
  return Math.min(32, Math.max(8, fit));
}

/**
 * What a spare worker is charged before its process has measured one, and
 * the least it is ever charged, MiB. Measured with `bench/pool_memory.ts
 * --spares 0,1,2,4,8` (Deno 2.9.6, x86_64, 2026-12-02): a spare of the echo
 * agent adds 6.2–6.4 MiB of RSS (PSS 6.0, private 6.2) to its process; 8 is
 * that with a quarter more for margin. Heavier agents cost more (14.1 MiB
 * for one importing Node modules and holding a 4 MiB table): their charge
 * is what their processes measure ({@linkcode perSpareBytes}).
 */
export const SPARE_WORKER_MB = 8;

/**
 * What each spare worker of a process costs, as its own resident set shows:
 * its growth since it held none, over the spares it holds now, never less
 * than {@linkcode SPARE_WORKER_MB}. The process reports its resident set
 * when it moved by {@linkcode RSS_REPORT_STEP} or more, so both samples may
 * be up to a step behind: two steps are added to the growth. A spare that
 * grows after it was readied (its agent's module globals filled later) grows
 * the process, and so its later charge.
 *
 * @example
 * ```ts
 * import { perSpareBytes } from "./memory_ceiling.ts";
 * const MiB = 1024 * 1024;
 * console.log(perSpareBytes(60 * MiB + 4 * 14 * MiB, 60 * MiB, 4) / MiB); // 14.5
 * ```
 *
 * @param rss the process's resident set now (bytes)
 * @param base its resident set when it held no spare (bytes)
 * @param spares the spares it holds now (at least 1)
 * @returns bytes charged for each
 */
export function perSpareBytes(rss: number, base: number, spares: number): number {
  const grown = Math.max(0, rss - base) + 2 * RSS_REPORT_STEP;
  return Math.max(SPARE_WORKER_MB * 1024 * 1024, grown / Math.max(1, spares));
}

/**
 * The default memory all sandbox processes' spare workers may take
 * together, bytes: a sixteenth of the machine's memory.
 * Each spare is charged at its key's measured cost ({@linkcode perSpareBytes}).
 *
 * @example
 * ```ts
 * import { defaultSpareBudget } from "./memory_ceiling.ts";
 * console.log(defaultSpareBudget(24 * 1024 ** 3) / 1024 ** 2); // 1536
 * ```
 *
 * @param totalBytes the machine's memory (default: `Deno.systemMemoryInfo().total`)
 * @returns the budget, bytes
 */
export function defaultSpareBudget(totalBytes?: number): number {
  const total = totalBytes ?? machineBytes();
  return Math.floor(total / 16);
}
