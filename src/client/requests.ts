/**
 * What a caller passes to the client's requests, and what a cancel answers.
 *
 * @module
 */
import type { JobStatus, Lease } from "./payloads.ts";

/** A job to submit. */
export interface SubmitRequest {
  /** `name` or `name@version`. */
  agent: string;
  /** The agent's input (any JSON value). */
  input: unknown;
  /** The lease asked for: namespace → glob patterns. */
  leaseRequest?: Lease;
  /** Lease constraints. */
  leaseConstraints?: {
    /** RFC 3339 UTC instant, strictly in the future. */
    expiresAt?: string;
  };
  /** Makes a retried submit return the same job instead of a second one. */
  idempotencyKey?: string;
  /** The runtime ends the job with `TIMEOUT` after this many seconds. */
  maxRuntimeSec?: number;
  /** W3C trace id (32 lowercase hex); a fresh one is minted when absent. */
  traceId?: string;
}

/** A `session.list_jobs` request. */
export interface ListJobsRequest {
  /** Which jobs; every field narrows. */
  filter?: {
    /** Only jobs in one of these states. */
    status?: JobStatus[];
    /** Only this agent: a bare name or `name@version`. */
    agent?: string;
    /** Only jobs created after this RFC 3339 instant. */
    createdAfter?: string;
    /** Only jobs created before this RFC 3339 instant. */
    createdBefore?: string;
  };
  /** Page size (1–1000). */
  limit?: number;
  /** The previous page's `next_cursor`. */
  cursor?: string | null;
}

/** Options of a `job.subscribe`. */
export interface SubscribeOptions {
  /** With `history`, replay the events after this seq of the owning session. */
  fromEventSeq?: number;
  /** Replay the job's buffered history before live events. */
  history?: boolean;
}

/**
 * How a cancel went: `cancelling` when the runtime confirmed it with
 * `job.cancelled` (the job's `CANCELLED` error follows), `ended` when the job
 * had already ended, so there was nothing to cancel.
 */
export type CancelOutcome = "cancelling" | "ended";
