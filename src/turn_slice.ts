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
 * The next turn is a message on a `MessageChannel`, not a timer: a chain of
 * `setTimeout(0)` waits a millisecond or more each time even when the event
 * loop is idle, which would make a loop that yields often slow; a message
 * arrives at the next poll of the event loop, with whatever I/O is ready.
 *
 * @module
 */

/** Longest stretch (ms) of bounded work in one turn before timers and I/O get theirs. */
export const TURN_SLICE_MS = 8;

let budgetMs = TURN_SLICE_MS;
let sliceStart = -1;
/** Continuations waiting for the next turn; a channel is open while any wait. */
let waiting: Array<() => void> = [];
let turnAsked = false;

/** Asks for a callback at the next turn, once however often asked in this one. */
function askTurn(): void {
  if (turnAsked) return;
  turnAsked = true;
  // A channel per turn, closed at once: an open port would keep the
  // process alive and count as a pending operation.
  const { port1, port2 } = new MessageChannel();
  port1.onmessage = () => {
    port1.close();
    turnAsked = false;
    sliceStart = -1;
    const due = waiting;
    waiting = [];
    for (const resolve of due) resolve();
  };
  port2.postMessage(null);
  port2.close();
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
    // The turn has ended by the time the message arrives.
    askTurn();
    return false;
  }
  return budgetMs === 0 || now - sliceStart > budgetMs;
}

/**
 * Resolves in a later turn of the event loop (a message, not a microtask:
 * microtasks run before any I/O is polled).
 *
 * @returns resolves once the event loop has polled I/O again
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
  return new Promise((resolve) => {
    waiting.push(resolve);
    askTurn();
  });
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
