/**
 * The session's `event_seq` count: envelopes that carry one must arrive
 * without gaps (ARCP §8.3), and a replay after a resume may overlap what was
 * already processed.
 *
 * @module
 */
import type { SequenceGap } from "./connect_options.ts";
import { ArcpClientError } from "./errors.ts";

/** The highest `event_seq` processed, and the check of the next one. */
export class EventSequence {
  #last: number;

  /**
   * Starts counting.
   *
   * @param last the `event_seq` already processed (a resumed session's, or 0)
   */
  constructor(last: number) {
    this.#last = last;
  }

  /** The highest `event_seq` processed. */
  get last(): number {
    return this.#last;
  }

  /**
   * Takes an envelope's `event_seq`.
   *
   * @param seq the seq it carries
   * @returns true when the envelope is the next one and is to be handled,
   *   false when it was already processed, or the gap when it skipped ahead
   */
  admit(seq: number): boolean | SequenceGap {
    // A replay may overlap what was already seen; those are dropped, not gaps.
    if (seq <= this.#last) return false;
    const expected = this.#last + 1;
    if (seq !== expected) return { expected, received: seq };
    this.#last = seq;
    return true;
  }

  /**
   * The error a gap breaks the session with.
   *
   * @param gap the gap {@linkcode admit} found
   * @returns the `SEQUENCE_GAP` error, which says where to resume from
   */
  gapError(gap: SequenceGap): ArcpClientError {
    return new ArcpClientError(
      "SEQUENCE_GAP",
      `expected event_seq ${gap.expected}, got ${gap.received}: resume from ${this.#last} to recover`,
      { retryable: true, details: { ...gap } },
    );
  }
}
