/**
 * Which job of a worker a message is about. Kept free of dependencies: the
 * sandbox process, which loads no npm packages, reads it too.
 *
 * @module
 */

/**
 * The slot a worker message is about, or undefined for a message about the
 * whole worker (or one too malformed to name a slot).
 *
 * @param msg a message as the worker posted it, unchecked
 * @returns its slot
 */
export function slotOf(msg: unknown): number | undefined {
  const j = (msg as { j?: unknown } | null)?.j;
  return typeof j === "number" && Number.isInteger(j) && j >= 0 ? j : undefined;
}

/**
 * The slot of the warm-up job a sandbox process drives through a new worker
 * before it reports the worker ready: no job ever has it (jobs' slots count
 * from 0), and the process relays nothing of it.
 */
export const WARM_SLOT = -1;

/**
 * How many warm-up jobs, one after another, a sandbox process drives
 * through a new worker before it reports the worker ready. A fresh worker
 * runs its one real job on code V8 has barely seen, and that job costs
 * less the more often its path ran before: a warmed worker's first real
 * job took 0.74–0.94 ms from `start` to result (p50) after three warm-up
 * jobs against 0.95–1.16 ms after one (`bench/worker_ready.ts --jobs 4`,
 * bench/RESULTS.md). None of them runs agent code.
 */
export const WARM_RUNS = 3;
