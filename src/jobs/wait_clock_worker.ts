/**
 * The clock thread of {@linkcode ShortWaits} (`timers.ts`): a Worker of the
 * runtime that sleeps until the earliest short wait is due and only then
 * tells the main thread, so a wait that ends early (nearly all of them)
 * never wakes the main thread's event loop nor arms a timer in it.
 *
 * It shares one buffer with the main thread ({@linkcode ClockLayout}): the
 * main thread publishes the earliest due time and bumps a generation
 * counter when it moves earlier; this thread blocks in `Atomics.wait` on
 * that counter until the due time, re-reads it, and posts a message only
 * when it has passed. It then waits for the main thread to answer (a new
 * due time and generation) before it looks again. It runs no event loop:
 * it is blocked in `Atomics.wait` or reading the buffer.
 *
 * @module
 */
import { CLOCK_DUE, CLOCK_GEN, CLOCK_STOP, CLOCK_UNTIL, clockViews, NO_DUE } from "./timers.ts";

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<SharedArrayBuffer>) => void) | null;
  postMessage(msg: null): void;
  close(): void;
};

scope.onmessage = (e) => {
  scope.onmessage = null;
  const { flags, times } = clockViews(e.data);
  for (;;) {
    if (Atomics.load(flags, CLOCK_STOP) !== 0) break;
    const gen = Atomics.load(flags, CLOCK_GEN);
    const due = Atomics.load(times, CLOCK_DUE);
    // Published before sleeping: a due time moved earlier than this needs a notify to be seen.
    Atomics.store(times, CLOCK_UNTIL, due);
    const left = Number(due) / 1000 - (performance.timeOrigin + performance.now());
    if (due !== NO_DUE && left <= 0) {
      scope.postMessage(null);
      Atomics.wait(flags, CLOCK_GEN, gen);
      continue;
    }
    Atomics.wait(flags, CLOCK_GEN, gen, due === NO_DUE ? undefined : left);
  }
  scope.close();
};
