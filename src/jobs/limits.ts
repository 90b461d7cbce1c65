/**
 * The tunables of the jobs layer and their defaults.
 *
 * @module
 */

/** Tunables of the jobs layer. */
export interface JobLimits {
  /** Live jobs one principal may have. */
  maxJobsPerPrincipal: number;
  /** How long an agent has to stop after a cancel before it is killed (ms). */
  cancelGraceMs: number;
  /** How long idempotency keys are kept (ms). */
  idempotencyTtlMs: number;
  /** A lease without `model.use` forbids every model. */
  requireModelLease: boolean;
  /** Largest decoded result chunk, bytes. */
  resultChunkBytes: number;
  /** Largest streamed result, bytes. */
  resultTotalBytes: number;
  /** Deepest chain of delegations (a submitted job is depth 0). */
  maxDelegationDepth: number;
  /** Live children one job may have. */
  maxChildrenPerJob: number;
  /** `job.event`s one job may commit to its log (every kind, result chunks included). */
  maxEventsPerJob: number;
  /** Bytes of `job.event`s one job may commit to its log. */
  maxLogBytesPerJob: number;
  /** `job.event`s one principal's live jobs may have committed together. */
  maxEventsPerPrincipal: number;
  /** Bytes of `job.event`s one principal's live jobs may have committed together. */
  maxLogBytesPerPrincipal: number;
  /** Largest input (`x-arcp-deno.job.input` content, serialized), bytes. */
  maxInputBytes: number;
  /** Inputs a job may hold that its agent has not read yet; past that a send is refused, retryably. */
  maxQueuedInputs: number;
  /**
   * How long a job's record may wait for the job's first envelope to share
   * its commit, for agents whose jobs end fast (ms; 0 never holds; see `AcceptHold`).
   */
  acceptHoldMs: number;
  /** An agent's jobs end fast when their moving average submit→terminal is at most this (ms). */
  acceptHoldFastMs: number;
  /**
   * How long a job's `running` status may wait for the job's next envelope
   * to share its commit (ms). A short job (an echo) ends well within it, so
   * its `running` and its terminal take one commit instead of two; a longer
   * one announces `running` this much later.
   */
  runningWaitMs: number;
}

/** Defaults of {@linkcode JobLimits}. */
export const DEFAULT_JOB_LIMITS: JobLimits = {
  maxJobsPerPrincipal: 100,
  cancelGraceMs: 2000,
  idempotencyTtlMs: 24 * 3600 * 1000,
  requireModelLease: true,
  resultChunkBytes: 1024 * 1024,
  resultTotalBytes: 256 * 1024 * 1024,
  maxDelegationDepth: 4,
  maxChildrenPerJob: 16,
  // 1e6 one-kilobyte logs once took a gigabyte of KV; a tenth of that is
  // plenty for any job that reports rather than floods.
  maxEventsPerJob: 100_000,
  // Room for the largest streamed result (256 MiB, a third more as base64) and its events.
  maxLogBytesPerJob: 512 * 1024 * 1024,
  maxEventsPerPrincipal: 1_000_000,
  maxLogBytesPerPrincipal: 1024 * 1024 * 1024,
  maxInputBytes: 64 * 1024,
  maxQueuedInputs: 32,
  // A commit takes about a millisecond here: a hold of a few lets a short
  // job's record, events and terminal share one instead of taking two in a row.
  acceptHoldMs: 3,
  acceptHoldFastMs: 3,
  runningWaitMs: 20,
};
