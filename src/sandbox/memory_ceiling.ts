/**
 * The default memory ceiling of a sandbox process: a bound on its resident
 * set, which counts ArrayBuffers and wasm memory, unlike the V8 heap cap.
 *
 * @module
 */

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
 * What a spare worker adds to its sandbox process, MiB (a process with a
 * warm worker holds 19–21 MiB private, without one 11.5, measured; rounded
 * up).
 */
export const SPARE_WORKER_MB = 12;

/**
 * The default most spare workers all sandbox processes hold together: as
 * many as a sixteenth of the machine's memory holds at
 * {@linkcode SPARE_WORKER_MB} each, clamped to 8 – 256.
 *
 * @example
 * ```ts
 * import { defaultSpareMax } from "./memory_ceiling.ts";
 * console.log(defaultSpareMax(24 * 1024 ** 3)); // 128
 * ```
 *
 * @param totalBytes the machine's memory (default: `Deno.systemMemoryInfo().total`)
 * @returns the count
 */
export function defaultSpareMax(totalBytes?: number): number {
  const total = totalBytes ?? machineBytes();
  const fit = Math.floor(total / 16 / 1024 / 1024 / SPARE_WORKER_MB);
  return Math.min(256, Math.max(8, fit));
}
