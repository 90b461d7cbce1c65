/**
 * A shared budget for inbound frames. When a client (or many) writes
 * thousands of frames at once, the WebSocket hands them over one after the
 * other without returning to the event loop, so decoding and routing them
 * all is one long stretch in which no timer runs and no other socket (a
 * ping, `/healthz`) is served. Connections process frames at once while
 * the stretch since the event loop last ran timers is short, and hold the
 * rest for a later macrotask once it is not.
 *
 * @module
 */

/** Longest stretch (ms) spent on inbound frames before timers and I/O get a turn. */
export const INBOUND_SLICE_MS = 8;

let sliceStart = -1;

/**
 * Whether the current stretch of the event loop has used up its budget.
 * The first call after a macrotask boundary starts a new stretch.
 *
 * @param budgetMs the budget (ms)
 * @returns true when frames should wait for a later macrotask
 * @example
 * ```ts
 * if (inboundSpent()) backlog.push(frame);
 * ```
 */
export function inboundSpent(budgetMs: number = INBOUND_SLICE_MS): boolean {
  const now = performance.now();
  if (sliceStart < 0) {
    sliceStart = now;
    // Runs at the next timers phase: the stretch has ended by then.
    setTimeout(() => void (sliceStart = -1), 0);
    return false;
  }
  return now - sliceStart > budgetMs;
}
