/**
 * The errors the client rejects with. Each carries a code: one of the
 * fifteen ARCP codes when the runtime said so, or one of three codes for
 * what only the client can see.
 *
 * @module
 */
import type { ErrorCode, ErrorPayload } from "../protocol/errors.ts";
import type { FailedStatus } from "../protocol/messages.ts";

export { ERROR_CODES, type ErrorCode } from "../protocol/errors.ts";

/**
 * A code on a client error: an ARCP code from the runtime, or one only the
 * client can know: `CONNECTION_CLOSED` (the socket closed before the answer
 * came; a running job keeps running and its session stays resumable),
 * `SEQUENCE_GAP` (an `event_seq` was skipped, so the session is broken and
 * should be resumed), `UNSUBSCRIBED` (the caller stopped following the job
 * before it ended), and for a streamed result (`resultBytes()`):
 * `RESULT_MALFORMED` (the runtime's `result_chunk` events do not add up:
 * out of order, a gap, two result ids, no last chunk, or a total other than
 * `result_size`) or `RESULT_UNAVAILABLE` (the job succeeded but its chunks
 * cannot be assembled here: the result came inline, `result_chunk` was not
 * negotiated, or the chunks went by before they were asked for; `details.reason`
 * says which).
 */
export type ClientErrorCode =
  | ErrorCode
  | "CONNECTION_CLOSED"
  | "SEQUENCE_GAP"
  | "UNSUBSCRIBED"
  | "RESULT_MALFORMED"
  | "RESULT_UNAVAILABLE";

/** Constructor options of {@linkcode ArcpClientError}. */
export interface ArcpClientErrorOptions {
  /** Whether the same request may succeed later; default false. */
  retryable?: boolean;
  /** Structured details, as the runtime sent them. */
  details?: Record<string, unknown>;
  /** The underlying fault, if any. */
  cause?: unknown;
}

/**
 * A failed request: a refused hello, a `session.error`, a refused cancel, or
 * a lost connection.
 *
 * @example
 * ```ts
 * import { ArcpClientError } from "./errors.ts";
 * const err = new ArcpClientError("JOB_NOT_FOUND", "no job job_1");
 * console.log(err.code, err.retryable); // JOB_NOT_FOUND false
 * ```
 */
export class ArcpClientError extends Error {
  /** What went wrong, as a code. */
  readonly code: ClientErrorCode;
  /** Whether the same request may succeed later. */
  readonly retryable: boolean;
  /** Structured details from the runtime. */
  readonly details?: Record<string, unknown>;

  /**
   * Creates an error.
   *
   * @param code the code
   * @param message what went wrong, for people
   * @param options retryable flag, details and cause
   */
  constructor(code: ClientErrorCode, message: string, options: ArcpClientErrorOptions = {}) {
    super(message || code, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ArcpClientError";
    this.code = code;
    this.retryable = options.retryable ?? false;
    if (options.details !== undefined) this.details = options.details;
  }
}

/**
 * The runtime refused a `job.submit` (bad request, unknown agent, duplicate
 * idempotency key, a cap reached...). No job exists; `jobId` is the id the
 * runtime minted for the refusal.
 */
export class SubmitRejectedError extends ArcpClientError {
  /** The id the refusal carried. */
  readonly jobId: string;

  /**
   * Creates the error from the refusal's `job.error`.
   *
   * @param jobId the refusal's job id
   * @param code the ARCP code
   * @param message the runtime's message
   * @param options retryable flag and details
   */
  constructor(
    jobId: string,
    code: ErrorCode,
    message: string,
    options: ArcpClientErrorOptions = {},
  ) {
    super(code, message, options);
    this.name = "SubmitRejectedError";
    this.jobId = jobId;
  }
}

export type { FailedStatus };

/**
 * A job ended without success: its terminal `job.error` (failure, cancel,
 * timeout, lease expiry, budget exhausted).
 */
export class JobFailedError extends ArcpClientError {
  /** The job. */
  readonly jobId: string;
  /** The job's final status. */
  readonly finalStatus: FailedStatus;

  /**
   * Creates the error from the job's terminal `job.error`.
   *
   * @param jobId the job
   * @param finalStatus its final status
   * @param code the ARCP code
   * @param message the runtime's message
   * @param options retryable flag and details
   */
  constructor(
    jobId: string,
    finalStatus: FailedStatus,
    code: ErrorCode,
    message: string,
    options: ArcpClientErrorOptions = {},
  ) {
    super(code, message, options);
    this.name = "JobFailedError";
    this.jobId = jobId;
    this.finalStatus = finalStatus;
  }
}

/**
 * The error a `session.error` names: the runtime's code, message, retryable
 * flag and details.
 *
 * @param payload the decoded payload; undefined when it failed its schema
 * @param malformed what to say then
 * @returns the error
 */
export function sessionError(
  payload: ErrorPayload | undefined,
  malformed: string,
): ArcpClientError {
  return payload
    ? new ArcpClientError(payload.code, payload.message, {
      retryable: payload.retryable,
      details: payload.details,
    })
    : new ArcpClientError("INTERNAL_ERROR", malformed);
}
