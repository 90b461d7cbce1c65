/**
 * The shapes of the records the runtime keeps in KV.
 *
 * @module
 */
import type { JobStatus, LeaseConstraints } from "../protocol/messages.ts";
import type { Lease } from "../protocol/lease.ts";
import type { ErrorPayload } from "../protocol/errors.ts";

/** Everything the runtime knows about a job, kept small (no input, no result). */
export interface JobRecord {
  /** The job id. */
  job_id: string;
  /** Principal that submitted it. */
  principal: string;
  /** Session that submitted it: the one with cancel authority. */
  session_id: string;
  /** Resolved agent, `name@version`. */
  agent: string;
  /** Current state. */
  status: JobStatus;
  /** The effective lease. */
  lease: Lease;
  /** Constraints as submitted. */
  lease_constraints?: LeaseConstraints;
  /** Initial budget counters per currency, when the lease has `cost.budget`. */
  budget?: Record<string, number>;
  /** Remaining budget per currency, exact decimal strings. */
  budget_remaining?: Record<string, string>;
  /** Trace id. */
  trace_id: string;
  /** Creation time, RFC 3339. */
  created_at: string;
  /** Creation time, epoch ms (the list index sorts on it). */
  created_ms: number;
  /** Acceptance time, RFC 3339. */
  accepted_at: string;
  /** End time, RFC 3339, once terminal. */
  ended_at?: string;
  /** Max runtime in seconds. */
  max_runtime_sec?: number;
  /** SHA-256 of the idempotency key, when one was given. */
  idempotency_hash?: string;
  /** Parent job, for delegated jobs. */
  parent_job_id?: string;
  /** The parent's `delegate` event that started this job. */
  delegate_id?: string;
  /** Latest `event_seq` of this job in its owner session. */
  last_event_seq: number;
  /** Entries in this job's own history. */
  log_length: number;
  /** The terminal error, once the job ended in error. */
  error?: ErrorPayload;
  /** The node running it (absent in records written before nodes existed). */
  node_id?: string;
  /** That node's run (a node id restarted is a new run): the owner is this run alone. */
  node_run?: string;
}

/** A session as stored, so it outlives its connection and the process. */
export interface SessionRecord {
  /** The session id. */
  session_id: string;
  /** Its principal. */
  principal: string;
  /** Creation time, RFC 3339. */
  created_at: string;
  /** Highest `event_seq` handed out. */
  last_seq: number;
  /** Highest seq the client acknowledged. */
  acked_seq: number;
  /** Log entries up to this seq have been freed; resume must start above it. */
  floor_seq: number;
  /** SHA-256 of the current resume token. */
  resume_token_hash: string;
  /** Negotiated features. */
  features: string[];
  /** When the session lost its connection (epoch ms), if it has. */
  detached_at?: number;
  /** `job.accepted` envelopes (delegated children) issued while detached, re-sent on resume. */
  pending_accepted?: string[];
  /** When the record was last written (epoch ms); the store sets it. */
  updated_at?: number;
  /** The node run holding the session in memory (the one writer of its log). */
  node_run?: string;
  /**
   * Jobs running on other nodes whose history this session's log holds up
   * to a position (exclusive): a node resuming the session feeds from there.
   */
  fed?: Record<string, number>;
  /**
   * Jobs this session subscribed to, by the first position of their history
   * not yet in its log: a node resuming the session goes on feeding from there.
   */
  subscribed?: Record<string, number>;
}

/** An idempotency key's record. */
export interface IdempotencyRecord {
  /** The job the key names. */
  job_id: string;
  /** Hash of the submit parameters the key was first used with. */
  params_hash: string;
  /**
   * When the key lapses (epoch ms); the store sets it. KV's own `expireIn`
   * removes entries only eventually, so reads check this.
   */
  expires_at?: number;
}

/** One subscription decision, for audit. */
export interface AuditRecord {
  /** Entry id. */
  id: string;
  /** When (epoch ms). */
  at: number;
  /** Who asked. */
  subscriber_principal: string;
  /** From which session. */
  subscriber_session: string;
  /** For which job. */
  job_id: string;
  /** The job's principal, when the job exists. */
  owner_principal?: string;
  /** `granted`, or the refusal code. */
  decision: string;
}
