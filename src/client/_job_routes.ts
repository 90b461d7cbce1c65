/**
 * Where a job's envelopes go: the handles and subscriptions following each
 * job, and the outcomes of jobs that ended here, so that a stream following
 * one late, or a cancel of one, settles at once.
 *
 * @module
 */
import type { ArcpClientError, JobFailedError } from "./errors.ts";
import { JobStream } from "./job_stream.ts";
import { Subscription } from "./job_subscription.ts";
import type { JobEventEnvelope, JobResultPayload } from "./payloads.ts";

/** Ended jobs remembered, so a late cancel or an idempotent replay of one settles at once. */
const ENDED_MEMORY = 256;

/** How a job ended. */
export type JobOutcome = JobResultPayload | JobFailedError;

/** The streams following each job, by job id. */
export class JobRoutes {
  /** Handles and subscriptions receiving a job's envelopes, by job id. */
  #jobs = new Map<string, Set<JobStream>>();
  /** Outcomes of recently ended jobs, oldest first. */
  #ended = new Map<string, JobOutcome>();
  /** Streams of `ConnectOptions.watch`, until `watch()` hands them out. */
  #early = new Map<string, JobStream>();

  /**
   * Routes a job's envelopes to a stream (or ends it, if the job already ended here).
   *
   * @param jobId the job
   * @param stream the stream
   */
  follow(jobId: string, stream: JobStream): void {
    const outcome = this.#ended.get(jobId);
    if (outcome) {
      stream.end(outcome);
      return;
    }
    const streams = this.#jobs.get(jobId);
    if (streams) streams.add(stream);
    else this.#jobs.set(jobId, new Set([stream]));
  }

  /**
   * Follows jobs from the welcome on, so that none of their envelopes are
   * missed before the caller asks for their streams.
   *
   * @param jobIds the jobs
   */
  followEarly(jobIds: readonly string[]): void {
    for (const jobId of jobIds) {
      const stream = new JobStream();
      this.#early.set(jobId, stream);
      this.follow(jobId, stream);
    }
  }

  /**
   * Hands out a stream of {@linkcode followEarly}, once.
   *
   * @param jobId the job
   * @returns the stream, or undefined when there is none (left)
   */
  takeEarly(jobId: string): JobStream | undefined {
    const early = this.#early.get(jobId);
    this.#early.delete(jobId);
    return early;
  }

  /**
   * Stops routing a job's envelopes to a subscription.
   *
   * @param jobId the job
   * @param sub the subscription
   * @returns whether another subscription still follows the job, so the
   *   runtime must keep sending its envelopes
   */
  unfollow(jobId: string, sub: Subscription): boolean {
    const streams = this.#jobs.get(jobId);
    streams?.delete(sub);
    if (streams?.size === 0) this.#jobs.delete(jobId);
    return [...streams ?? []].some((s) => s instanceof Subscription);
  }

  /**
   * Whether any stream follows a job.
   *
   * @param jobId the job
   * @returns true when one does
   */
  isFollowed(jobId: string): boolean {
    return this.#jobs.has(jobId);
  }

  /**
   * Whether a job ended here recently.
   *
   * @param jobId the job
   * @returns true when its outcome is remembered
   */
  hasEnded(jobId: string): boolean {
    return this.#ended.has(jobId);
  }

  /**
   * Hands a job's event to every stream following it.
   *
   * @param jobId the job
   * @param event the `job.event` envelope
   */
  push(jobId: string, event: JobEventEnvelope): void {
    for (const s of this.#jobs.get(jobId) ?? []) s.push(event);
  }

  /**
   * Ends a job's streams with its outcome, and remembers it.
   *
   * @param jobId the job
   * @param outcome its result or failure
   */
  end(jobId: string, outcome: JobOutcome): void {
    for (const s of this.#jobs.get(jobId) ?? []) s.end(outcome);
    this.#jobs.delete(jobId);
    this.#ended.set(jobId, outcome);
    if (this.#ended.size > ENDED_MEMORY) this.#ended.delete(this.#ended.keys().next().value!);
  }

  /**
   * The connection was lost: every stream still following a job fails.
   *
   * @param error why
   */
  loseAll(error: ArcpClientError): void {
    for (const streams of this.#jobs.values()) for (const s of streams) s.lose(error);
    this.#jobs.clear();
  }
}
