/**
 * What the client's requests send, and where each waits for its answer:
 * the mirror of `_inbound.ts`, which settles them.
 *
 * @module
 */
import { TRACE_ID } from "../protocol/envelope.ts";
import type { Feature } from "../protocol/features.ts";
import { newTraceId, newUlid } from "../protocol/ids.ts";
import type { MessageType, Payloads } from "../protocol/messages.ts";
import { nowIso } from "../protocol/time.ts";
import { ArcpClientError } from "./errors.ts";
import { type JobHandle, SubmittedJob } from "./job_handle.ts";
import type { JobSubscription } from "./job_subscription.ts";
import type { JobsPayload, PongPayload } from "./payloads.ts";
import type { PendingRequests } from "./pending_requests.ts";
import type {
  CancelOutcome,
  ListJobsRequest,
  SubmitRequest,
  SubscribeOptions,
} from "./requests.ts";
import type { SessionParts } from "./_session_parts.ts";
import { listJobsPayload, submitPayload, subscribePayload } from "./_request_payloads.ts";
import { INPUT_FEATURE, INPUT_TYPE, TRANSCRIPT_TYPE } from "../protocol/job_input.ts";
import type {
  InputReceipt,
  SendInputOptions,
  TranscriptPagePayload,
  TranscriptRequest,
} from "./job_input.ts";

/** Sends one session's requests; `ArcpClient` documents each. */
export class Outbound {
  #parts: SessionParts;

  /**
   * Creates the sender of one session.
   *
   * @param parts the session's wire, pending requests and job routes
   */
  constructor(parts: SessionParts) {
    this.#parts = parts;
  }

  /**
   * Sends a `job.submit`.
   *
   * @param request agent, input, lease, limits
   * @returns the job's handle, at once
   */
  submit(request: SubmitRequest): JobHandle {
    const traceId = request.traceId ?? newTraceId();
    const handle = new SubmittedJob(
      traceId,
      (jobId, reason) => this.cancel(jobId, reason),
      (jobId, content, options) => this.sendInput(jobId, content, options),
    );
    if (!TRACE_ID.test(traceId)) {
      handle.refuse(
        new ArcpClientError("INVALID_REQUEST", "traceId: must be 32 lowercase hex characters"),
      );
      return handle;
    }
    if (!this.#parts.connection.send("job.submit", submitPayload(request), { trace_id: traceId })) {
      handle.lose(this.#parts.connection.closedError());
      return handle;
    }
    this.#parts.outstanding.submits.add(traceId, handle);
    return handle;
  }

  /**
   * Sends a `job.cancel`, and after it the one-entry list whose answer says
   * the job had already ended when no word on the cancel came first.
   *
   * @param jobId the job
   * @param reason why, for the runtime's records
   * @returns how the cancel went
   */
  cancel(jobId: string, reason?: string): Promise<CancelOutcome> {
    if (this.#parts.routes.hasEnded(jobId)) return Promise.resolve("ended");
    const payload = reason === undefined ? {} : { reason };
    if (!this.#parts.connection.send("job.cancel", payload, { job_id: jobId })) {
      return Promise.reject(this.#parts.connection.closedError());
    }
    const pending = this.#parts.outstanding.cancels.add(jobId);
    if (this.#negotiated("list_jobs")) {
      this.#list({ limit: 1 }).then(() => pending.settle("ended"), (err) => pending.settle(err));
    }
    return pending.outcome;
  }

  /**
   * Sends a `session.list_jobs`.
   *
   * @param request filter, page size and cursor
   * @returns the `session.jobs` payload
   */
  listJobs(request: ListJobsRequest): Promise<JobsPayload> {
    if (!this.#negotiated("list_jobs")) return this.#notNegotiated("list_jobs");
    return this.#list(request);
  }

  /**
   * Sends a `job.subscribe`.
   *
   * @param jobId the job
   * @param options history replay
   * @returns the subscription, once the runtime sent `job.subscribed`
   */
  subscribe(jobId: string, options: SubscribeOptions): Promise<JobSubscription> {
    if (!this.#negotiated("subscribe")) return this.#notNegotiated("subscribe");
    const payload = subscribePayload(jobId, options);
    return this.#ask(this.#parts.outstanding.subscribes, jobId, "job.subscribe", payload);
  }

  /**
   * Sends a `session.ping`.
   *
   * @returns the `session.pong` payload
   */
  ping(): Promise<PongPayload> {
    const nonce = `p_${newUlid()}`;
    return this.#ask(this.#parts.outstanding.pings, nonce, "session.ping", {
      nonce,
      sent_at: nowIso(),
    });
  }

  /**
   * Sends a `session.ack`, when `ack` was negotiated.
   *
   * @param seq the highest processed `event_seq`
   * @returns whether it was sent
   */
  ack(seq: number): boolean {
    if (!this.#negotiated("ack")) return false;
    return this.#parts.connection.send("session.ack", { last_processed_seq: seq });
  }

  /**
   * Sends an `x-arcp-deno.job.input`.
   *
   * @param jobId the job
   * @param content the input (any JSON value; may be absent only with `end`)
   * @param options whether the input ends with it
   * @returns the receipt
   */
  async sendInput(
    jobId: string,
    content: unknown,
    options: SendInputOptions,
  ): Promise<InputReceipt> {
    if (!this.#negotiated(INPUT_FEATURE)) return await this.#notNegotiated(INPUT_FEATURE);
    const id = newUlid();
    const payload = {
      job_id: jobId,
      ...(content === undefined ? {} : { content }),
      ...(options.end ? { end: true } : {}),
    };
    const answer = await this.#ask(this.#parts.outstanding.vendor, id, INPUT_TYPE, payload, {
      id,
    }) as InputReceipt;
    return { job_id: answer.job_id, input_seq: answer.input_seq };
  }

  /**
   * Sends an `x-arcp-deno.job.transcript`.
   *
   * @param jobId the job
   * @param request cursor and page size
   * @returns the page
   */
  async transcript(jobId: string, request: TranscriptRequest): Promise<TranscriptPagePayload> {
    if (!this.#negotiated(INPUT_FEATURE)) return await this.#notNegotiated(INPUT_FEATURE);
    const id = newUlid();
    const payload = {
      job_id: jobId,
      ...(request.after === undefined ? {} : { after: request.after }),
      ...(request.limit === undefined ? {} : { limit: request.limit }),
    };
    return await this.#ask(this.#parts.outstanding.vendor, id, TRANSCRIPT_TYPE, payload, {
      id,
    }) as TranscriptPagePayload;
  }

  #list(request: ListJobsRequest): Promise<JobsPayload> {
    const id = newUlid();
    const payload = listJobsPayload(request);
    return this.#ask(this.#parts.outstanding.lists, id, "session.list_jobs", payload, { id });
  }

  /** Sends a request and waits for the answer that will name `key`. */
  #ask<T extends MessageType, A>(
    answers: PendingRequests<string, PromiseWithResolvers<A>>,
    key: string,
    type: T,
    payload: Payloads[T],
    extra?: { id: string },
  ): Promise<A> {
    if (!this.#parts.connection.send(type, payload, extra)) {
      return Promise.reject(this.#parts.connection.closedError());
    }
    const answer = Promise.withResolvers<A>();
    answers.add(key, answer);
    return answer.promise;
  }

  #negotiated(feature: Feature): boolean {
    return this.#parts.connection.session.features.includes(feature);
  }

  #notNegotiated(feature: Feature): Promise<never> {
    return Promise.reject(
      new ArcpClientError(
        "INVALID_REQUEST",
        `the session did not negotiate the ${feature} feature`,
      ),
    );
  }
}
