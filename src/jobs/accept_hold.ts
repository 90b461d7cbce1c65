/**
 * Whether a new job's record should wait for the job's first envelope.
 *
 * A short job (an echo) costs two group commits one after the other: its
 * record, then its terminal. When an agent's jobs recently ended within a
 * few milliseconds of their submit, holding the next job's record that long
 * lets the record, the job's events and its terminal share one commit. A
 * job that takes longer than the hold loses nothing but the hold: its record
 * goes alone when the hold is over, as it would have at once, and its
 * `job.accepted` that much later. The decision follows a moving average of
 * submit→terminal per agent key (to when the terminal is decided, which a
 * hold does not delay: the job started at submit either way), so an agent
 * whose jobs slow down stops being held after a couple of them. A sample
 * counts for at most twice the threshold: one stall (a GC pause, a busy
 * machine) moves the average, but does not end the hold on its own. Only
 * jobs that found a worker ready count (see `Lifecycle.start`): a job that
 * waited for a fresh worker to load says nothing about how fast its agent
 * ends, and releases its own held record as soon as it knows it waits.
 *
 * @module
 */

/** Options of {@linkcode AcceptHold}. */
export interface AcceptHoldOptions {
  /** How long a record is held at most (ms); 0 never holds. */
  holdMs: number;
  /** Jobs of an agent whose moving average submit→terminal is at most this (ms) are held. */
  fastMs: number;
}

/** Weight of the newest job in the moving average. */
const WEIGHT = 0.25;

/** Agent keys remembered at most; the least recently ended is forgotten first. */
const MAX_KEYS = 1024;

/** The moving average of submit→terminal per agent key, and the hold it earns. */
export class AcceptHold {
  #options: AcceptHoldOptions;
  /** Moving average (ms) by agent key, least recently updated first. */
  #average = new Map<string, number>();

  /**
   * @param options the longest hold and the average that earns it
   */
  constructor(options: AcceptHoldOptions) {
    this.#options = options;
  }

  /**
   * How long to hold the record of a job of an agent.
   *
   * @example
   * ```ts
   * import { AcceptHold } from "./accept_hold.ts";
   * const hold = new AcceptHold({ holdMs: 3, fastMs: 3 });
   * hold.ended("echo@1.0.0", 1);
   * console.log(hold.holdFor("echo@1.0.0")); // 3
   * ```
   *
   * @param key the agent key (`name@version`)
   * @returns the hold in ms: 0 for an agent not seen ending fast
   */
  holdFor(key: string): number {
    if (this.#options.holdMs <= 0) return 0;
    const average = this.#average.get(key);
    return average !== undefined && average <= this.#options.fastMs ? this.#options.holdMs : 0;
  }

  /**
   * Notes how long a job of an agent took from its submit to its terminal.
   *
   * @param key the agent key (`name@version`)
   * @param ms submit→terminal, in ms
   */
  ended(key: string, ms: number): void {
    ms = Math.min(ms, 2 * this.#options.fastMs);
    const before = this.#average.get(key);
    const average = before === undefined ? ms : before + WEIGHT * (ms - before);
    // Re-inserted, so the map's order is least recently ended first.
    this.#average.delete(key);
    this.#average.set(key, average);
    if (this.#average.size > MAX_KEYS) {
      this.#average.delete(this.#average.keys().next().value!);
    }
  }
}
