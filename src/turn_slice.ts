/**
 * One budget per turn of the event loop, shared by every loop that could
 * otherwise run long in it: inbound frames, settling a group commit,
 * announcing jobs that run, frames from sandbox processes, starting sandbox
 * processes. A ping or a health check waits for the whole turn in front of
 * it, whichever part ran long, so the parts share one clock rather than
 * each taking its own slice of the same turn. A loop checks
 * {@linkcode sliceSpent} between units of work and, once it is spent,
 * continues after {@linkcode nextTurn}; the first check of a turn is never
 * spent, so every loop makes progress.
 *
 * The next turn is a timer. A `MessageChannel` message or `setImmediate`
 * would resume sooner, but the event loop then wakes itself without
 * polling sockets (Tokio looks at I/O only every 61 such polls): measured,
 * a loop yielding that way, 1 ms of work per turn, held a socket's echo for
 * ~60 turns (64 ms), where a `setTimeout(0)` let it in after one (3.4 ms).
 * A timer costs an idle millisecond only when nothing else is waiting.
 *
 * The stretch ends with an immediate, which runs once the turn's callbacks
 * have: it needs no wake of its own. Ended by a timer (Deno holds a 0 ms
 * timer for 1 ms), an idle loop woke a millisecond after each turn only to
 * end it, one or two wakes per short job, and turns within that
 * millisecond shared the stretch of the one before.
 *
 * @module
 */

/** Longest stretch (ms) of bounded work in one turn before timers and I/O get theirs. */
export const TURN_SLICE_MS = 8;

let budgetMs = TURN_SLICE_MS;
let sliceStart = -1;

/** Ends the stretch: an immediate runs once the turn's callbacks have run. */
function endSlice(): void {
  sliceStart = -1;
}

/**
 * Whether the current turn has used up its budget. The first call after a
 * macrotask boundary starts a new stretch and says no.
 *
 * @returns true when the caller should continue after {@linkcode nextTurn}
 * @example
 * ```ts
 * import { sliceSpent } from "./turn_slice.ts";
 * const backlog: string[] = [];
 * if (sliceSpent()) backlog.push("frame");
 * ```
 */
export function sliceSpent(): boolean {
  const now = performance.now();
  if (sliceStart < 0) {
    sliceStart = now;
    setImmediate(endSlice);
    return false;
  }
  return budgetMs === 0 || now - sliceStart > budgetMs;
}

/**
 * Resolves in a later turn of the event loop (a timer, not a microtask:
 * microtasks run before any I/O is polled).
 *
 * @returns resolves after pending timers and I/O have had their turn
 * @example
 * ```ts
 * import { nextTurn, sliceSpent } from "./turn_slice.ts";
 * for (const item of [1, 2, 3]) {
 *   if (sliceSpent()) await nextTurn();
 *   console.log(item);
 * }
 * ```
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Sets the budget (ms) every loop shares; 0 makes every check after the
 * first of a turn spent, so each bounded loop yields as often as it can
 * (tests use it to prove the loops keep their order when they yield).
 *
 * @param ms the new budget
 * @returns the budget it replaces
 * @example
 * ```ts
 * import { setTurnSliceMs } from "./turn_slice.ts";
 * const before = setTurnSliceMs(0);
 * setTurnSliceMs(before);
 * ```
 */
export function setTurnSliceMs(ms: number): number {
  const before = budgetMs;
  budgetMs = ms;
  return before;
}
