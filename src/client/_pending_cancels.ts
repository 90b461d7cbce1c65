/**
 * Cancels waiting for the runtime's word. A cancel settles once, however
 * its answer comes: `job.cancelled`, the job's end, a refusal, the
 * follow-up list that shows there was nothing left to cancel, or a failed
 * session.
 *
 * @module
 */
import { PendingRequests } from "./pending_requests.ts";
import type { CancelOutcome } from "./requests.ts";

/** A cancel waiting for the runtime's word. */
interface PendingCancel {
  answer: PromiseWithResolvers<CancelOutcome>;
  settled: boolean;
}

/** One cancel just sent. */
export interface CancelWait {
  /** How the cancel went. */
  readonly outcome: Promise<CancelOutcome>;
  /**
   * Settles this cancel, unless its answer already came.
   *
   * @param outcome how it went, or why it failed
   */
  settle(outcome: CancelOutcome | Error): void;
}

/** Pending cancels, by job id. */
export class PendingCancels {
  #cancels = new PendingRequests<string, PendingCancel>();

  /**
   * Waits for the runtime's word on a cancel just sent.
   *
   * @param jobId the job
   * @returns the cancel's outcome, and a way to settle it from elsewhere
   */
  add(jobId: string): CancelWait {
    const pending: PendingCancel = { answer: Promise.withResolvers(), settled: false };
    this.#cancels.add(jobId, pending);
    return {
      outcome: pending.answer.promise,
      settle: (outcome) => this.#settle(jobId, pending, outcome),
    };
  }

  /**
   * Settles the oldest cancel of a job: a refusal names no cancel, and the
   * runtime answers a session's requests in order.
   *
   * @param jobId the job
   * @param outcome how it went, or why it failed
   */
  settleOldest(jobId: string, outcome: CancelOutcome | Error): void {
    const pending = this.#cancels.peek(jobId);
    if (pending) this.#settle(jobId, pending, outcome);
  }

  /**
   * Settles every cancel of a job.
   *
   * @param jobId the job
   * @param outcome how they went
   */
  settleAll(jobId: string, outcome: CancelOutcome | Error): void {
    for (const c of this.#cancels.drain(jobId)) this.#settle(jobId, c, outcome);
  }

  /**
   * Fails every pending cancel.
   *
   * @param error why
   */
  failAll(error: Error): void {
    for (const [jobId, cancel] of this.#cancels.drainAll()) this.#settle(jobId, cancel, error);
  }

  #settle(jobId: string, pending: PendingCancel, outcome: CancelOutcome | Error): void {
    if (pending.settled) return;
    pending.settled = true;
    this.#cancels.remove(jobId, pending);
    if (outcome instanceof Error) pending.answer.reject(outcome);
    else pending.answer.resolve(outcome);
  }
}
