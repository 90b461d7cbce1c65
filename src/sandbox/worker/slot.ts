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
