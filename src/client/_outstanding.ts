/**
 * The session's requests awaiting the runtime's answer, one table each, and
 * how a failed session fails them.
 *
 * @module
 */
import type { ArcpClientError } from "./errors.ts";
import type { SubmittedJob } from "./job_handle.ts";
import type { JobSubscription } from "./job_subscription.ts";
import type { JobsPayload, PongPayload } from "./payloads.ts";
import { PendingCancels } from "./_pending_cancels.ts";
import { PendingRequests } from "./pending_requests.ts";

/** Every request of the session still awaiting its answer. */
export class Outstanding {
  /** Submits awaiting their answer, by trace id. */
  readonly submits: PendingRequests<string, SubmittedJob> = new PendingRequests();
  /** Lists by request envelope id. */
  readonly lists: PendingRequests<string, PromiseWithResolvers<JobsPayload>> =
    new PendingRequests();
  /** Subscribes by job id. */
  readonly subscribes: PendingRequests<string, PromiseWithResolvers<JobSubscription>> =
    new PendingRequests();
  /** Pings by nonce. */
  readonly pings: PendingRequests<string, PromiseWithResolvers<PongPayload>> =
    new PendingRequests();
  /** Vendor requests (input, transcript) by request envelope id; settled with the answer's payload. */
  readonly vendor: PendingRequests<string, PromiseWithResolvers<unknown>> = new PendingRequests();
  /** Cancels by job id. */
  readonly cancels: PendingCancels = new PendingCancels();

  /**
   * ARCP §3: a `session.error` fails every pending submit, list, subscribe
   * (and cancel); a ping still waits for its pong.
   *
   * @param error the runtime's error
   */
  refuse(error: ArcpClientError): void {
    for (const [, handle] of this.submits.drainAll()) handle.refuse(error);
    this.#rejectAnswers(error);
    this.cancels.failAll(error);
  }

  /**
   * The connection was lost: every request fails.
   *
   * @param error why
   */
  lose(error: ArcpClientError): void {
    for (const [, handle] of this.submits.drainAll()) handle.lose(error);
    this.#rejectAnswers(error);
    for (const [, ping] of this.pings.drainAll()) ping.reject(error);
    this.cancels.failAll(error);
  }

  #rejectAnswers(error: ArcpClientError): void {
    for (const [, list] of this.lists.drainAll()) list.reject(error);
    for (const [, subscribe] of this.subscribes.drainAll()) subscribe.reject(error);
    for (const [, request] of this.vendor.drainAll()) request.reject(error);
  }
}
