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
  /** Every job record. */
  jobs: (): Deno.KvKey => [V, "job"],
  /** A job record by id. */
  job: (jobId: string): Deno.KvKey => [V, "job", jobId],
  /**
   * A principal's finished jobs of one terminal status, in creation order
   * (the list_jobs index), the listed fields of the final record as value.
   */
  statusJobs: (principal: string, status: string): Deno.KvKey => [V, "pjs", principal, status],
  /** One finished job in its principal's status index. */
  statusJob: (principal: string, status: string, createdMs: number, jobId: string): Deno.KvKey => [
    V,
    "pjs",
    principal,
    status,
    createdMs,
    jobId,
  ],
  /** A principal's finished jobs of one agent (bare name) and terminal status, in creation order. */
  agentJobs: (principal: string, agent: string, status: string): Deno.KvKey => [
    V,
    "pja",
    principal,
    agent,
    status,
  ],
  /** One finished job in its principal's agent index (no value since layout 4: read its status entry). */
  agentJob: (
    principal: string,
    agent: string,
    status: string,
    createdMs: number,
    jobId: string,
  ): Deno.KvKey => [V, "pja", principal, agent, status, createdMs, jobId],
  /**
   * Jobs not yet terminal, of every principal (reconciled on start), by
   * principal then creation order: one entry per job serves the restart,
   * the list_jobs index of live jobs and the cross-node cap count.
   */
  liveJobs: (): Deno.KvKey => [V, "plive"],
  /** A principal's live jobs, in creation order. */
  principalLiveJobs: (principal: string): Deno.KvKey => [V, "plive", principal],
  /** One live job (value: its session and bare agent name, see `LiveEntry`). */
  liveJob: (principal: string, createdMs: number, jobId: string): Deno.KvKey => [
    V,
    "plive",
    principal,
    createdMs,
    jobId,
  ],
  /** The list_jobs index of layout 1 (one entry per job, record as value); migrated away. */
  legacyPrincipalJobs: (): Deno.KvKey => [V, "pjob"],
  /** The live-jobs index of layouts 1 and 2 (by job id, the session id as value); migrated away. */
  legacyLiveJobs: (): Deno.KvKey => [V, "live"],
  /** Terminal jobs by end time whose history is still kept (the sweeper's first stage). */
  endedJobs: (): Deno.KvKey => [V, "ended"],
  /** One terminal job in the end-time index. */
  endedJob: (endedMs: number, jobId: string): Deno.KvKey => [V, "ended", endedMs, jobId],
  /** Terminal jobs by end time whose history is gone and whose record is still kept. */
  keptJobs: (): Deno.KvKey => [V, "kept"],
  /** One terminal job in the second stage. */
  keptJob: (endedMs: number, jobId: string): Deno.KvKey => [V, "kept", endedMs, jobId],
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
  /** Every runtime node's record (see `nodes.ts`). */
  nodes: (): Deno.KvKey => [V, "node"],
  /** One node's record: its lease, URL and live jobs. */
  node: (nodeId: string): Deno.KvKey => [V, "node", nodeId],
  /**
   * Rewritten with every cancel, input and handover request between nodes:
   * a node that saw no other node at its last scan reads this one key, not
   * the three request lists, to learn whether any came.
   */
  requestMark: (): Deno.KvKey => [V, "reqs"],
  /** Cancel requests for jobs running on another node. */
  cancelRequests: (): Deno.KvKey => [V, "cxl"],
  /** The cancel request of one job; its owning node acts on it. */
  cancelRequest: (jobId: string): Deno.KvKey => [V, "cxl", jobId],
  /** Requests that a node let go of a session another node is resuming. */
  handovers: (): Deno.KvKey => [V, "hand"],
  /** The handover request of one session. */
  handover: (sessionId: string): Deno.KvKey => [V, "hand", sessionId],
  /** Inputs for jobs running on another node. */
  inputRequests: (): Deno.KvKey => [V, "inp"],
  /** One input for a job on another node; its owning node records it. */
  inputRequest: (jobId: string, id: string): Deno.KvKey => [V, "inp", jobId, id],
  /** The owning node's answer to a forwarded input (its `input_seq`, or the refusal). */
  inputAnswer: (id: string): Deno.KvKey => [V, "inpa", id],
  /** A principal's admission gate: every node admitting a job bumps it with a check. */
  admissionGate: (principal: string): Deno.KvKey => [V, "gate", principal],
  /** The runtime's own event log (started, jobs accepted and ended, sessions, drain). */
  runtimeEvents: (): Deno.KvKey => [V, "rtlog"],
  /** One entry of the runtime's event log, by position. */
  runtimeEvent: (n: number): Deno.KvKey => [V, "rtlog", n],
  /**
   * Which key layout the store holds (absent: layout 1, before the status
   * and agent indexes; 2 kept live jobs in a `"live"` bucket of both and in
   * `[v1, "live", id]`; 3 keeps them once, under `plive`; 4 writes agent
   * entries of finished jobs without a value).
   */
  layout: (): Deno.KvKey => [V, "meta", "layout"],
};
