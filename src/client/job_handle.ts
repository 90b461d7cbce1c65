/**
 * The handle `ArcpClient.submit` returns at once: the submit's answer, then
 * the job's events and outcome.
 *
 * @module
 */
import type { ArcpClientError } from "./errors.ts";
import { type JobEvents, JobStream } from "./job_stream.ts";
import type { AcceptedPayload } from "./payloads.ts";
import type { CancelOutcome } from "./requests.ts";

/** A submitted job. */
export interface JobHandle extends JobEvents {
  /** The trace id the submit carried; the runtime's answer is matched by it. */
  readonly traceId: string;
  /** The job id, once `accepted` has resolved. */
  readonly jobId: string | undefined;
  /**
   * Resolves with the `job.accepted` payload; rejects with a
   * `SubmitRejectedError` when the runtime refused the submit, or an
   * `ArcpClientError` on a `session.error` or a lost connection.
   */
  readonly accepted: Promise<AcceptedPayload>;
  /**
   * Cancels the job (after it is accepted).
   *
   * @param reason why, for the runtime's records
   * @returns `cancelling` once the runtime confirmed, `ended` when the job had already ended
   */
  cancel(reason?: string): Promise<CancelOutcome>;
}

/** Sends a `job.cancel` for a job id. */
export type CancelJob = (jobId: string, reason?: string) => Promise<CancelOutcome>;

/** The client's side of a {@linkcode JobHandle}. */
export class SubmittedJob extends JobStream implements JobHandle {
  /** See {@linkcode JobHandle.traceId}. */
  readonly traceId: string;
  /** See {@linkcode JobHandle.accepted}. */
  readonly accepted: Promise<AcceptedPayload>;
  #answer: PromiseWithResolvers<AcceptedPayload>;
  #jobId: string | undefined;
  #cancel: CancelJob;

  /**
   * Creates a handle awaiting its submit's answer.
   *
   * @param traceId the submit's trace id
   * @param cancel how to cancel a job by id
   */
  constructor(traceId: string, cancel: CancelJob) {
    super();
    this.traceId = traceId;
    this.#cancel = cancel;
    this.#answer = Promise.withResolvers<AcceptedPayload>();
    this.accepted = this.#answer.promise;
    // A caller that only awaits `result` must not get an unhandled rejection.
    this.accepted.catch(() => {});
  }

  /** See {@linkcode JobHandle.jobId}. */
  get jobId(): string | undefined {
    return this.#jobId;
  }

  /**
   * The runtime accepted the submit.
   *
   * @param payload the `job.accepted` payload
   */
  accept(payload: AcceptedPayload): void {
    this.#jobId = payload.job_id;
    this.#answer.resolve(payload);
  }

  /**
   * The submit failed (refused, or failed with its session): no job to
   * follow, so `accepted` and `result` reject and the events end.
   *
   * @param error why
   */
  refuse(error: ArcpClientError): void {
    this.#answer.reject(error);
    this.end(error);
  }

  /**
   * The connection was lost: whatever is still pending rejects.
   *
   * @param error why
   */
  override lose(error: ArcpClientError): void {
    this.#answer.reject(error);
    super.lose(error);
  }

  /**
   * See {@linkcode JobHandle.cancel}.
   *
   * @param reason why
   * @returns the outcome
   */
  async cancel(reason?: string): Promise<CancelOutcome> {
    const { job_id } = await this.accepted;
    if (this.ended) return "ended";
    return await this.#cancel(job_id, reason);
  }
}
