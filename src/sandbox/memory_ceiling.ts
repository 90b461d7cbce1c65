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
  let total = totalBytes;
  if (total === undefined) {
    try {
      total = Deno.systemMemoryInfo().total;
    } catch {
      total = 0;
    }
  }
  const eighth = Math.floor(total / 8 / 1024 / 1024);
  const clamped = Math.min(MAX_DEFAULT_MB, Math.max(MIN_DEFAULT_MB, eighth));
  return Math.max(clamped, heapMb + 128);
}
