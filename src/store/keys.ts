/**
 * Every KV key the runtime writes, in one place. Keys are versioned by their
 * first part so a later layout can live beside this one.
 *
 * @module
 */

/** Version prefix of every key. */
export const V = "v1";

/** Key builders. Client-supplied strings never appear raw: ids are minted, idempotency keys are hashed. */
export const keys = {
  /** A job record by id. */
  job: (jobId: string): Deno.KvKey => [V, "job", jobId],
  /** All jobs of a principal, in creation order (the list_jobs index). */
  principalJobs: (principal: string): Deno.KvKey => [V, "pjob", principal],
  /** One job in its principal's index. */
  principalJob: (principal: string, createdMs: number, jobId: string): Deno.KvKey => [
    V,
    "pjob",
    principal,
    createdMs,
    jobId,
  ],
  /** Jobs not yet terminal (reconciled on start). */
  liveJobs: (): Deno.KvKey => [V, "live"],
  /** One live job. */
  liveJob: (jobId: string): Deno.KvKey => [V, "live", jobId],
  /** Terminal jobs by end time (the sweeper's index of job histories to drop). */
  endedJobs: (): Deno.KvKey => [V, "ended"],
  /** One terminal job in the end-time index. */
  endedJob: (endedMs: number, jobId: string): Deno.KvKey => [V, "ended", endedMs, jobId],
  /** A job's own event history (for subscribers), by position. */
  jobLog: (jobId: string): Deno.KvKey => [V, "jlog", jobId],
  /** One entry of a job's history. */
  jobLogEntry: (jobId: string, n: number): Deno.KvKey => [V, "jlog", jobId, n],
  /** Every session record. */
  sessions: (): Deno.KvKey => [V, "sess"],
  /** A session record. */
  session: (sessionId: string): Deno.KvKey => [V, "sess", sessionId],
  /** A session's event log. */
  sessionLog: (sessionId: string): Deno.KvKey => [V, "slog", sessionId],
  /** One envelope of a session's event log. */
  sessionLogEntry: (sessionId: string, seq: number): Deno.KvKey => [V, "slog", sessionId, seq],
  /** Outstanding credential revocations of every job. */
  revocationsAll: (): Deno.KvKey => [V, "revoke"],
  /** Outstanding credential revocations of one job. */
  revocations: (jobId: string): Deno.KvKey => [V, "revoke", jobId],
  /** One outstanding revocation, by the credential's non-secret handle. */
  revocation: (jobId: string, handle: string): Deno.KvKey => [V, "revoke", jobId, handle],
  /** The subscription audit log. */
  audit: (): Deno.KvKey => [V, "audit"],
  /** One audit entry, in time order. */
  auditEntry: (atMs: number, id: string): Deno.KvKey => [V, "audit", atMs, id],
  /** Sessions whose record the sweeper deleted and whose log it is still deleting. */
  sweptSessions: (): Deno.KvKey => [V, "swept"],
  /** One session being swept. */
  sweptSession: (sessionId: string): Deno.KvKey => [V, "swept", sessionId],
  /** Every idempotency key. */
  idempotencyKeys: (): Deno.KvKey => [V, "idem"],
  /** What the group committer writes, while commits fail, to learn when storage works again. */
  storageProbe: (): Deno.KvKey => [V, "probe"],
  /** An idempotency key (hashed) of a principal. */
  idempotency: (principal: string, keyHash: string): Deno.KvKey => [V, "idem", principal, keyHash],
};
