/**
 * Timers that survive long delays. `setTimeout` with a delay above
 * 2^31-1 ms fires at once (measured), so long waits are clamped and
 * re-armed until the deadline really passes.
 *
 * @module
 */

/** The longest delay `setTimeout` honours. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `fn` at an absolute time, however far away.
 *
 * @param fn what to call
 * @param deadlineMs epoch milliseconds
 * @returns cancels the timer
 * @example
 * ```ts
 * import { setDeadline } from "./timers.ts";
 * const cancel = setDeadline(() => console.log("late"), Date.now() + 100 * 24 * 3600 * 1000);
 * cancel();
 * ```
 */
export function setDeadline(fn: () => void, deadlineMs: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    const left = deadlineMs - Date.now();
    if (left <= 0) {
      timer = undefined;
      fn();
      return;
    }
    timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
  };
  arm();
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
}
