/**
 * A job followed with `job.subscribe`: its authority descriptor, then its
 * events and outcome, re-stamped into the subscriber's own session.
 *
 * @module
 */
import { ArcpClientError } from "./errors.ts";
import { type JobEvents, JobStream } from "./job_stream.ts";
import type { SubscribedPayload } from "./payloads.ts";

/** A subscription to a job. */
export interface JobSubscription extends JobEvents {
  /** The job. */
  readonly jobId: string;
  /** The `job.subscribed` payload. */
  readonly info: SubscribedPayload;
  /** Stops delivery; the events end and `result` rejects with `UNSUBSCRIBED` if still pending. */
  unsubscribe(): void;
}

/** The client's side of a {@linkcode JobSubscription}. */
export class Subscription extends JobStream implements JobSubscription {
  /** See {@linkcode JobSubscription.info}. */
  readonly info: SubscribedPayload;
  #unsubscribe: () => void;

  /**
   * Creates a subscription from the runtime's answer.
   *
   * @param info the `job.subscribed` payload
   * @param unsubscribe sends the `job.unsubscribe` and stops routing to this one
   */
  constructor(info: SubscribedPayload, unsubscribe: () => void) {
    super();
    this.info = info;
    this.#unsubscribe = unsubscribe;
  }

  /** See {@linkcode JobSubscription.jobId}. */
  get jobId(): string {
    return this.info.job_id;
  }

  /** See {@linkcode JobSubscription.unsubscribe}. */
  unsubscribe(): void {
    if (this.ended) return;
    this.#unsubscribe();
    this.end(
      new ArcpClientError("UNSUBSCRIBED", `unsubscribed from ${this.jobId} before it ended`),
    );
  }
}
