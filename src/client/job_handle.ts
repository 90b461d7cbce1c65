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
import type { InputReceipt, SendInputOptions } from "./job_input.ts";

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
  /**
   * Sends input to the running job (after it is accepted; vendor feature
   * `x-arcp-deno.input`). The agent reads it with `ctx.input()`/`ctx.inputs()`.
   *
   * @param content the input, any JSON value (may be left out with `end`)
   * @param options `end: true` when no input follows
   * @returns the receipt, once the input is recorded in the job's history
   * @throws {ArcpClientError} `INVALID_REQUEST` (the job ended, the input is
   *   over the runtime's cap, or the feature was not negotiated),
   *   `PERMISSION_DENIED`, or `INTERNAL_ERROR` with `retryable` and
   *   `details.cap: "input_queue"` while the agent has not read earlier inputs
   * @example
   * ```ts ignore
   * const job = client.submit({ agent: "echo-input", input: null });
   * await job.send("hello");
   * await job.send(undefined, { end: true });
   * console.log((await job.result).result); // { answered: 1 }
   * ```
   */
  send(content: unknown, options?: SendInputOptions): Promise<InputReceipt>;
}

/** Sends a `job.cancel` for a job id. */
export type CancelJob = (jobId: string, reason?: string) => Promise<CancelOutcome>;

/** Sends an input to a job by id. */
export type SendInput = (
  jobId: string,
  content: unknown,
  options: SendInputOptions,
) => Promise<InputReceipt>;

/** The client's side of a {@linkcode JobHandle}. */
export class SubmittedJob extends JobStream implements JobHandle {
  /** See {@linkcode JobHandle.traceId}. */
  readonly traceId: string;
  /** See {@linkcode JobHandle.accepted}. */
  readonly accepted: Promise<AcceptedPayload>;
  #answer: PromiseWithResolvers<AcceptedPayload>;
  #jobId: string | undefined;
  #cancel: CancelJob;
  #send: SendInput;

  /**
   * Creates a handle awaiting its submit's answer.
   *
   * @param traceId the submit's trace id
   * @param cancel how to cancel a job by id
   * @param send how to send a job input
   */
  constructor(traceId: string, cancel: CancelJob, send: SendInput) {
    super();
    this.traceId = traceId;
    this.#cancel = cancel;
    this.#send = send;
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

  /**
   * See {@linkcode JobHandle.send}.
   *
   * @param content the input
   * @param options `end: true` when no input follows
   * @returns the receipt
   */
  async send(content: unknown, options: SendInputOptions = {}): Promise<InputReceipt> {
    const { job_id } = await this.accepted;
    return await this.#send(job_id, content, options);
  }
}
