/**
 * Timers that survive long delays. `setTimeout` with a delay above
 * 2^31-1 ms fires at once (measured), so long waits are clamped and
 * re-armed until the deadline really passes. And short fallback waits that
 * share timers they never clear ({@linkcode ShortWaits}).
 *
 * @module
 */
import { sliceSpent } from "../turn_slice.ts";

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

/** One wait of {@linkcode ShortWaits}. */
interface Wait {
  /** When it is due (epoch ms, fractional). */
  due: number;
  /** Called once it is due, unless it was left first. */
  fire: () => void;
}

/** Index in the clock's flags: the generation the main thread bumps when the due time moves earlier. */
export const CLOCK_GEN = 0;
/** Index in the clock's flags: set to stop the clock thread. */
export const CLOCK_STOP = 1;
/** Index in the clock's times: the earliest due time (epoch µs), {@linkcode NO_DUE} when none. */
export const CLOCK_DUE = 0;
/** Index in the clock's times: the due time the clock thread last went to sleep until. */
export const CLOCK_UNTIL = 1;
/** No wait queued. */
export const NO_DUE = 2n ** 62n;

/**
 * The buffer the main thread and the clock thread share: two `Int32`
 * flags (generation, stop) that `Atomics.wait` can block on, then two
 * `BigInt64` times.
 */
export interface ClockLayout {
  /** `CLOCK_GEN`, `CLOCK_STOP`. */
  flags: Int32Array;
  /** `CLOCK_DUE`, `CLOCK_UNTIL`. */
  times: BigInt64Array;
}

/**
 * The views of a clock's shared buffer.
 *
 * @param sab the buffer (16 bytes or more)
 * @returns its flags and times
 */
export function clockViews(sab: SharedArrayBuffer): ClockLayout {
  return { flags: new Int32Array(sab, 0, 2), times: new BigInt64Array(sab, 8, 2) };
}

/**
 * How early (ms) a wait may be called: the clock thread's reading of the
 * same clock differs by up to ~0.1 ms (measured), and a wait found just
 * short of due would otherwise send the clock thread round again.
 */
const EARLY_MS = 0.25;

/** Now, as epoch ms with a fraction (the clock thread reads the same clock). */
function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Short fallback waits that nearly always end before they are due (a held
 * record, a job's `running` announcement), timed off the main thread.
 *
 * In Deno 2.9.6 a timer costs the main thread even when it never fires: a
 * `setTimeout`/`clearTimeout` pair between two socket reads costs ~15 µs
 * (~1.3 µs in a tight loop), clearing it does not disarm the event loop's
 * native timer (its wake comes anyway, finding nothing), and one armed a
 * few ms ahead while jobs run back to back fires every few ms, each a wake
 * of the event loop (measured; see bench/RESULTS.md). Here a wait is an
 * entry in a queue, and a clock thread (`wait_clock_worker.ts`) sleeps
 * until the earliest is due: the main thread only publishes that time in
 * a shared buffer, and hears from the clock thread only when a wait really
 * is due. The clock thread is started with the first wait.
 */
export class ShortWaits {
  /** Queued waits by delay, each queue in due order (insertion order, the delay being equal). */
  #queues = new Map<number, Map<object, Wait>>();
  /** Where each queued wait is, by key. */
  #where = new Map<object, Map<object, Wait>>();
  #clock: { worker: Worker; views: ClockLayout } | undefined;
  /** The due time last published (epoch ms). */
  #published = Number.POSITIVE_INFINITY;

  /**
   * Calls `fire` in `ms` unless {@linkcode leave} is called for `key` first.
   * A key waits once: waiting again replaces its wait.
   *
   * @param key whose wait it is
   * @param ms the wait (ms)
   * @param fire called once it is due
   */
  wait(key: object, ms: number, fire: () => void): void {
    this.leave(key);
    const due = epochNow() + ms;
    let queue = this.#queues.get(ms);
    if (!queue) this.#queues.set(ms, queue = new Map());
    queue.set(key, { due, fire });
    this.#where.set(key, queue);
    if (due < this.#published) this.#publish(due);
  }

  /**
   * Ends a wait before it is due: its callback will not be called.
   *
   * @param key whose wait it is
   */
  leave(key: object): void {
    const queue = this.#where.get(key);
    if (!queue) return;
    const wait = queue.get(key)!;
    queue.delete(key);
    this.#where.delete(key);
    // The clock thread wakes at the old time, finds the later one and sleeps again.
    if (wait.due <= this.#published) this.#publish(this.#earliest());
  }

  /** Drops every wait and stops the clock thread (shutdown); a later wait starts another. */
  stop(): void {
    this.#queues.clear();
    this.#where.clear();
    this.#published = Number.POSITIVE_INFINITY;
    const clock = this.#clock;
    this.#clock = undefined;
    if (!clock) return;
    Atomics.store(clock.views.flags, CLOCK_STOP, 1);
    Atomics.add(clock.views.flags, CLOCK_GEN, 1);
    Atomics.notify(clock.views.flags, CLOCK_GEN);
    clock.worker.terminate();
  }

  /** The earliest due time queued (epoch ms), infinite when none. */
  #earliest(): number {
    let earliest = Number.POSITIVE_INFINITY;
    for (const queue of this.#queues.values()) {
      for (const wait of queue.values()) {
        earliest = Math.min(earliest, wait.due);
        break;
      }
    }
    return earliest;
  }

  /**
   * Publishes the earliest due time. One moved earlier than the clock
   * thread sleeps until wakes it; one moved later needs no wake.
   */
  #publish(due: number): void {
    this.#published = due;
    const { flags, times } = (this.#clock ??= this.#start()).views;
    const micros = due === Number.POSITIVE_INFINITY ? NO_DUE : BigInt(Math.ceil(due * 1000));
    Atomics.store(times, CLOCK_DUE, micros);
    // Bumped on every earlier time, so a clock thread between reading the time and
    // sleeping on the generation does not sleep past it; notified only when asleep past it.
    Atomics.add(flags, CLOCK_GEN, 1);
    if (micros < Atomics.load(times, CLOCK_UNTIL)) Atomics.notify(flags, CLOCK_GEN);
  }

  #start(): { worker: Worker; views: ClockLayout } {
    const sab = new SharedArrayBuffer(24);
    const views = clockViews(sab);
    Atomics.store(views.times, CLOCK_DUE, NO_DUE);
    Atomics.store(views.times, CLOCK_UNTIL, NO_DUE);
    const worker = new Worker(new URL("./wait_clock_worker.ts", import.meta.url), {
      type: "module",
    });
    worker.onmessage = () => this.#fire();
    worker.postMessage(sab);
    return { worker, views };
  }

  /**
   * Calls the waits that are due, a turn's budget at a time (a burst of
   * starts makes hundreds due at once), then answers the clock thread with
   * the next due time (now, when the budget ran out).
   */
  #fire(): void {
    if (!this.#clock) return;
    const now = epochNow();
    let spent = false;
    for (const queue of this.#queues.values()) {
      for (const [key, wait] of queue) {
        if (wait.due - now > EARLY_MS) break;
        if (sliceSpent()) {
          spent = true;
          break;
        }
        queue.delete(key);
        this.#where.delete(key);
        wait.fire();
      }
      if (spent) break;
    }
    if (!this.#clock) return;
    const next = this.#earliest();
    this.#publish(next);
    // The clock thread waits for this answer whatever the time.
    Atomics.notify(this.#clock.views.flags, CLOCK_GEN);
  }
}
