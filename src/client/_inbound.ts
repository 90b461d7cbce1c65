/**
 * What the open session's envelopes do: each answers a pending request,
 * feeds a job's streams, or ends a job, the session, or a cancel.
 *
 * @module
 */
import type { Envelope } from "../protocol/envelope.ts";
import { nowIso } from "../protocol/time.ts";
import type { z } from "zod";
import {
  INPUT_ACCEPTED_TYPE,
  InputAcceptedSchema,
  REFUSED_TYPE,
  RefusedSchema,
  TRANSCRIPT_PAGE_TYPE,
  TranscriptPageSchema,
} from "../protocol/job_input.ts";
import * as decode from "./decode.ts";
import { ArcpClientError, JobFailedError, sessionError, SubmitRejectedError } from "./errors.ts";
import { Subscription } from "./job_subscription.ts";
import type { JobOutcome } from "./_job_routes.ts";
import type { SessionParts } from "./_session_parts.ts";

/** Hands each envelope of the open session to what awaits it. */
export class Inbound {
  #parts: SessionParts;

  /**
   * Creates the dispatcher of one session.
   *
   * @param parts the session's wire, pending requests and job routes
   */
  constructor(parts: SessionParts) {
    this.#parts = parts;
  }

  /**
   * Handles one envelope; the connection has checked its session id and
   * `event_seq`.
   *
   * @param env the envelope
   */
  handle(env: Envelope): void {
    switch (env.type) {
      case "session.ping":
        return this.#onPing(env);
      case "session.pong":
        return this.#onPong(env);
      case "session.error":
        return this.#onSessionError(env);
      case "session.bye":
        return this.#parts.connection.shutdown(
          new ArcpClientError(
            "CONNECTION_CLOSED",
            `the runtime closed the session${
              typeof env.payload.reason === "string" ? `: ${env.payload.reason}` : ""
            }`,
            { retryable: true },
          ),
        );
      case "session.jobs":
        return this.#onJobs(env);
      case "job.accepted":
        return this.#onAccepted(env);
      case "job.event":
        return this.#onEvent(env);
      case "job.result":
        return this.#onResult(env);
      case "job.error":
        return this.#onJobError(env);
      case "job.cancelled":
        return this.#onCancelled(env);
      case "job.subscribed":
        return this.#onSubscribed(env);
      case INPUT_ACCEPTED_TYPE:
        return this.#onVendorAnswer(env, InputAcceptedSchema);
      case TRANSCRIPT_PAGE_TYPE:
        return this.#onVendorAnswer(env, TranscriptPageSchema);
      case REFUSED_TYPE:
        return this.#onRefused(env);
    }
  }

  /** The answer to an input or transcript request, by its request id; a malformed one fails it. */
  #onVendorAnswer(env: Envelope, schema: z.ZodType<{ request_id: string }>): void {
    const requestId = (env.payload as { request_id?: unknown }).request_id;
    if (typeof requestId !== "string") return;
    const pending = this.#parts.outstanding.vendor.take(requestId);
    const parsed = schema.safeParse(env.payload);
    if (parsed.success) pending?.resolve(parsed.data);
    else {
      pending?.reject(
        new ArcpClientError("INTERNAL_ERROR", `the runtime sent a malformed ${env.type}`),
      );
    }
  }

  /** A refused input or transcript request: only that request fails. */
  #onRefused(env: Envelope): void {
    const parsed = RefusedSchema.safeParse(env.payload);
    if (!parsed.success) return;
    const { request_id, code, message, retryable, details } = parsed.data;
    this.#parts.outstanding.vendor.take(request_id)?.reject(
      new ArcpClientError(code, message, { retryable, details }),
    );
  }

  #onPing(env: Envelope): void {
    const ping = decode.ping(env.payload);
    if (!ping) return;
    this.#parts.connection.send("session.pong", { ping_nonce: ping.nonce, received_at: nowIso() });
  }

  #onPong(env: Envelope): void {
    const pong = decode.pong(env.payload);
    if (!pong) return;
    this.#parts.outstanding.pings.take(pong.ping_nonce)?.resolve(pong);
  }

  /** ARCP §3: a `session.error` fails every pending submit, list, subscribe (and cancel). */
  #onSessionError(env: Envelope): void {
    const err = sessionError(
      decode.errorPayload(env.payload),
      "the runtime sent a malformed session.error",
    );
    this.#parts.connection.noteSessionError(err);
    this.#parts.outstanding.refuse(err);
  }

  #onJobs(env: Envelope): void {
    const jobs = decode.jobs(env.payload);
    if (!jobs) return;
    this.#parts.outstanding.lists.take(jobs.request_id)?.resolve(jobs);
  }

  #onAccepted(env: Envelope): void {
    // Always matched by trace id: the submit always carries one. An
    // unmatched answer (a delegated child, a submit given up on after a
    // session.error) belongs to no handle.
    const handle = env.trace_id ? this.#parts.outstanding.submits.take(env.trace_id) : undefined;
    if (!handle) return;
    const accepted = decode.accepted(env.payload);
    if (!accepted) {
      handle.refuse(
        new ArcpClientError("INTERNAL_ERROR", "the runtime sent a malformed job.accepted"),
      );
      return;
    }
    handle.accept(accepted);
    this.#parts.routes.follow(accepted.job_id, handle);
  }

  #onEvent(env: Envelope): void {
    if (!env.job_id || !this.#parts.routes.isFollowed(env.job_id)) return;
    const event = decode.jobEvent(env);
    if (event) this.#parts.routes.push(env.job_id, event);
  }

  #onResult(env: Envelope): void {
    const result = decode.result(env.payload);
    if (result && env.job_id) this.#terminate(env.job_id, result);
  }

  #onJobError(env: Envelope): void {
    const error = decode.jobError(env.payload);
    if (!error || !env.job_id) return;
    const options = { retryable: error.retryable, details: error.details };
    // A refused cancel is the requester's alone and ends nothing.
    if (error.details?.refused === "job.cancel") {
      this.#parts.outstanding.cancels.settleOldest(
        env.job_id,
        new ArcpClientError(error.code, error.message, options),
      );
      return;
    }
    const handle = env.trace_id && !this.#parts.routes.isFollowed(env.job_id)
      ? this.#parts.outstanding.submits.take(env.trace_id)
      : undefined;
    if (handle) {
      handle.refuse(new SubmitRejectedError(env.job_id, error.code, error.message, options));
      return;
    }
    this.#terminate(
      env.job_id,
      new JobFailedError(env.job_id, error.final_status, error.code, error.message, options),
    );
  }

  #onCancelled(env: Envelope): void {
    if (!env.job_id || !decode.cancelled(env.payload)) return;
    this.#parts.outstanding.cancels.settleAll(env.job_id, "cancelling");
  }

  #onSubscribed(env: Envelope): void {
    const info = decode.subscribed(env.payload);
    if (!info) return;
    const answer = this.#parts.outstanding.subscribes.take(info.job_id);
    if (!answer) return;
    const sub = new Subscription(info, () => this.#unsubscribe(info.job_id, sub));
    this.#parts.routes.follow(info.job_id, sub);
    answer.resolve(sub);
  }

  #unsubscribe(jobId: string, sub: Subscription): void {
    if (!this.#parts.routes.unfollow(jobId, sub)) {
      this.#parts.connection.send("job.unsubscribe", { job_id: jobId });
    }
  }

  #terminate(jobId: string, outcome: JobOutcome): void {
    this.#parts.routes.end(jobId, outcome);
    this.#parts.outstanding.cancels.settleAll(jobId, "ended");
  }
}
