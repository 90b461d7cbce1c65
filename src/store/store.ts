/**
 * The runtime's state in Deno KV: jobs, session logs, sessions and
 * idempotency keys. Every read and write of KV goes through here.
 *
 * @module
 */
import { keys, V } from "./keys.ts";
import { keyId, keyIdUnder } from "./key_id.ts";
import { GroupCommitter } from "./group_commit.ts";
import { type KvWrite, listTexts, logEntries, logWrites } from "./large_value.ts";
import type { AuditRecord, IdempotencyRecord, JobRecord, SessionRecord } from "./records.ts";
import { Revocations } from "./revocations.ts";
import { type JobStatus, TERMINAL_STATUSES } from "../protocol/messages.ts";

/**
 * Identities of the key prefixes every event writes under, computed once:
 * a write's identity then costs one concatenation (see `key_id.ts`).
 */
const PREFIX_IDS = {
  job: keyId(keys.job("").slice(0, 2)),
  principalJob: keyId(keys.principalJobs("").slice(0, 2)),
  liveJob: keyId(keys.liveJobs()),
  session: keyId(keys.sessions()),
  sessionLog: keyId(keys.sessionLog("").slice(0, 2)),
  jobLog: keyId(keys.jobLog("").slice(0, 2)),
};

/** Filters of a job listing. */
export interface JobQuery {
  /** Only these states. */
  statuses?: readonly JobStatus[];
  /** Bare name or `name@version`. */
  agent?: string;
  /** Created strictly after (epoch ms). */
  createdAfterMs?: number;
  /** Created strictly before (epoch ms). */
  createdBeforeMs?: number;
  /** Resume after this position (exclusive). */
  after?: { createdMs: number; jobId: string };
  /** At most this many. */
  limit: number;
}

/** One page of jobs. */
export interface JobPage {
  /** The jobs, in (creation time, id) order. */
  jobs: JobRecord[];
  /** Position of the last job when more may follow. */
  next?: { createdMs: number; jobId: string };
}

/** Options of {@linkcode Store.open}. */
export interface StoreOptions {
  /** KV file path, or `:memory:`. */
  path: string;
}

/**
 * The runtime's KV store.
 *
 * @example
 * ```ts ignore
 * import { Store } from "./store.ts";
 * const store = await Store.open({ path: ":memory:" });
 * store.close();
 * ```
 */
export class Store {
  /** The database. */
  readonly kv: Deno.Kv;
  /** Batches writes into atomic commits. */
  readonly committer: GroupCommitter;
  /** Outstanding credential revocations. */
  readonly revocations: Revocations;
  /**
   * Called when commits start failing for a storage reason (disk full, I/O
   * error), with the error and the sessions whose envelopes or records are
   * now held back. The writes are retried until they land, so nothing is
   * lost or reordered, but nothing waiting on them is sent meanwhile.
   */
  onCommitStall: ((error: unknown, sessionIds: string[]) => void) | undefined;
  /** Called when commits succeed again after a stall. */
  onCommitRecover: (() => void) | undefined;

  private constructor(kv: Deno.Kv) {
    this.kv = kv;
    this.revocations = new Revocations(kv);
    this.committer = new GroupCommitter(kv, {
      onStall: (error, writes) => this.onCommitStall?.(error, sessionsOf(writes)),
      onRecover: () => this.onCommitRecover?.(),
    });
  }

  /**
   * Opens the store. The path is always explicit: `Deno.openKv()` with no
   * path would open a default database elsewhere.
   *
   * @param options where the KV file is
   * @returns the open store
   */
  static async open(options: StoreOptions): Promise<Store> {
    return new Store(await Deno.openKv(options.path));
  }

  /**
   * Closes the database after pending commits land. Writes held back by a
   * storage failure get one last attempt and are then rejected.
   */
  async close(): Promise<void> {
    await this.committer.close();
    this.kv.close();
  }

  /**
   * Queues writes for the next group commit.
   *
   * @param writes writes that must land together
   * @returns resolves once durable
   */
  write(writes: KvWrite[]): Promise<void> {
    return this.committer.write(writes);
  }

  // ---- jobs -------------------------------------------------------------

  /**
   * Reads a job.
   *
   * @param jobId the job id
   * @returns the record, or null
   */
  async getJob(jobId: string): Promise<JobRecord | null> {
    return (await this.kv.get<JobRecord>(keys.job(jobId))).value;
  }

  /**
   * The writes that store a job record and keep its indexes in step.
   *
   * @param job the record
   * @returns writes for the record, the principal index, the live index and,
   *   once the job has ended, the end-time index the sweeper reads
   */
  jobWrites(job: JobRecord): KvWrite[] {
    const live = !TERMINAL_STATUSES.has(job.status);
    const jobKey = keys.job(job.job_id);
    const indexKey = keys.principalJob(job.principal, job.created_ms, job.job_id);
    const liveKey = keys.liveJob(job.job_id);
    const writes: KvWrite[] = [
      { key: jobKey, value: job, id: keyIdUnder(PREFIX_IDS.job, jobKey, 2) },
      { key: indexKey, value: job, id: keyIdUnder(PREFIX_IDS.principalJob, indexKey, 2) },
      {
        key: liveKey,
        value: live ? job.session_id : undefined,
        id: keyIdUnder(PREFIX_IDS.liveJob, liveKey, 2),
      },
    ];
    const endedMs = job.ended_at === undefined ? NaN : Date.parse(job.ended_at);
    if (!live && Number.isFinite(endedMs)) {
      writes.push({ key: keys.endedJob(endedMs, job.job_id), value: job.session_id });
    }
    return writes;
  }

  /**
   * Creates a job and claims its idempotency key in one atomic step, so two
   * racing submits with one key cannot both create a job.
   *
   * @param job the new job
   * @param idempotency the key to claim, if any
   * @returns true when created; false when the key was claimed meanwhile
   * @throws the storage error when commits are failing (disk full, I/O
   *   error): the job is refused rather than accepted late
   */
  async createJob(
    job: JobRecord,
    idempotency?: { principal: string; keyHash: string; record: IdempotencyRecord; ttlMs: number },
  ): Promise<boolean> {
    // While the store cannot commit at all, refuse the job now rather than
    // accept it whenever the disk has room again.
    if (this.committer.stalled !== undefined) throw this.committer.stalled;
    if (!idempotency) {
      await this.write(this.jobWrites(job));
      return true;
    }
    const key = keys.idempotency(idempotency.principal, idempotency.keyHash);
    // Earlier queued writes (e.g. this session's log) must land first; a
    // storage failure meanwhile refuses the job instead of waiting.
    await this.committer.flush({ failFast: true });
    // A key past its `expires_at` may still be in KV (expiry is eventual):
    // it is free to claim, guarded by its versionstamp. Retry when the
    // sweeper deleted it between our read and our write.
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await this.kv.get<IdempotencyRecord>(key);
      if (existing.value && !isExpired(existing.value, Date.now())) return false;
      const record: IdempotencyRecord = {
        ...idempotency.record,
        expires_at: Date.now() + idempotency.ttlMs,
      };
      const op = this.kv.atomic().check({ key, versionstamp: existing.versionstamp })
        .set(key, record, { expireIn: idempotency.ttlMs });
      for (const w of this.jobWrites(job)) {
        if (w.value === undefined) op.delete(w.key);
        else op.set(w.key, w.value);
      }
      if ((await op.commit()).ok) return true;
    }
    return false;
  }

  /**
   * Reads an idempotency key.
   *
   * @param principal the key's principal
   * @param keyHash SHA-256 of the key
   * @returns the record, or null when unknown or expired
   */
  async getIdempotency(principal: string, keyHash: string): Promise<IdempotencyRecord | null> {
    const record = (await this.kv.get<IdempotencyRecord>(keys.idempotency(principal, keyHash)))
      .value;
    return record && !isExpired(record, Date.now()) ? record : null;
  }

  /**
   * Jobs that were not terminal when last written.
   *
   * @returns their records
   */
  async *liveJobs(): AsyncGenerator<JobRecord> {
    for await (const entry of this.kv.list({ prefix: keys.liveJobs() })) {
      const job = await this.getJob(entry.key.at(-1) as string);
      if (job) yield job;
    }
  }

  /**
   * A page of a principal's jobs, in creation order.
   *
   * @param principal whose jobs
   * @param query filters and paging
   * @returns the page
   */
  async listJobs(principal: string, query: JobQuery): Promise<JobPage> {
    const prefix = keys.principalJobs(principal);
    const start: Deno.KvKey = query.after
      ? [...prefix, query.after.createdMs, query.after.jobId, ""]
      : query.createdAfterMs !== undefined
      ? [...prefix, query.createdAfterMs + 1]
      : prefix;
    const end: Deno.KvKey = query.createdBeforeMs !== undefined
      ? [...prefix, query.createdBeforeMs]
      : [...prefix, Number.MAX_SAFE_INTEGER];
    const statuses = query.statuses ? new Set(query.statuses) : undefined;
    const jobs: JobRecord[] = [];
    let last: JobRecord | undefined;
    for await (const entry of this.kv.list<JobRecord>({ start, end }, { batchSize: 200 })) {
      const job = entry.value;
      if (query.createdAfterMs !== undefined && job.created_ms <= query.createdAfterMs) continue;
      if (statuses && !statuses.has(job.status)) continue;
      if (query.agent && job.agent !== query.agent && job.agent.split("@")[0] !== query.agent) {
        continue;
      }
      if (jobs.length === query.limit) {
        return { jobs, next: { createdMs: last!.created_ms, jobId: last!.job_id } };
      }
      jobs.push(job);
      last = job;
    }
    return { jobs };
  }

  // ---- sessions and logs ------------------------------------------------

  /**
   * Reads a session record.
   *
   * @param sessionId the session id
   * @returns the record, or null
   */
  async getSession(sessionId: string): Promise<SessionRecord | null> {
    return (await this.kv.get<SessionRecord>(keys.session(sessionId))).value;
  }

  /**
   * The write that stores a session record, stamped with `updated_at`.
   *
   * @param session the record
   * @param ttlMs how long KV keeps it
   * @returns the write
   */
  sessionWrite(session: SessionRecord, ttlMs: number): KvWrite {
    const key = keys.session(session.session_id);
    return {
      key,
      value: { ...session, updated_at: Date.now() },
      expireIn: ttlMs,
      id: keyIdUnder(PREFIX_IDS.session, key, 2),
    };
  }

  /**
   * The writes that append an envelope to a session's log.
   *
   * @param sessionId the session
   * @param seq the envelope's `event_seq`
   * @param text the serialized envelope
   * @param ttlMs how long KV keeps it
   * @returns the writes
   */
  sessionLogWrites(sessionId: string, seq: number, text: string, ttlMs: number): KvWrite[] {
    const log = keys.sessionLog(sessionId);
    return logWrites(log, seq, text, ttlMs, keyIdUnder(PREFIX_IDS.sessionLog, log, 2));
  }

  /**
   * The writes that append an envelope to a job's own history.
   *
   * @param jobId the job
   * @param n position in the job's history
   * @param text the envelope as its owner session received it
   * @returns the writes
   */
  jobLogWrites(jobId: string, n: number, text: string): KvWrite[] {
    const log = keys.jobLog(jobId);
    return logWrites(log, n, text, undefined, keyIdUnder(PREFIX_IDS.jobLog, log, 2));
  }

  /**
   * A session's logged envelopes after a seq.
   *
   * @param sessionId the session
   * @param afterSeq list seqs greater than this
   * @returns `[seq, envelope text]` in order
   */
  sessionLog(sessionId: string, afterSeq: number): AsyncGenerator<[number, string]> {
    return listTexts(this.kv, keys.sessionLog(sessionId), afterSeq);
  }

  /**
   * Frees a session's log entries with `after < seq <= upTo`. Entries
   * stored together with later ones (one commit's entries share a value)
   * are cut out of that value, so exactly the entries up to `upTo` go.
   *
   * @param sessionId the session
   * @param after keep this seq and below (already freed)
   * @param upTo free up to and including this seq
   * @param ttlMs how long KV keeps what is left of a value that is cut
   * @returns resolves once deleted
   */
  async freeSessionLog(
    sessionId: string,
    after: number,
    upTo: number,
    ttlMs: number,
  ): Promise<void> {
    const prefix = keys.sessionLog(sessionId);
    const depth = prefix.length + 1;
    let batch: KvWrite[] = [];
    for await (
      const entry of this.kv.list({ prefix, start: [...prefix, after + 1] }, { batchSize: 500 })
    ) {
      const n = entry.key[depth - 1] as number;
      if (n <= upTo) {
        // The entry, a value of entries, or a head or part of a large entry.
        batch.push({ key: entry.key });
      } else {
        if (entry.key.length === depth) {
          const held = logEntries(n, entry.value);
          const kept = held.filter(([seq]) => seq > upTo).map(([, text]) => text);
          if (kept.length < held.length) {
            const value = kept.length === 1 ? kept[0] : kept;
            batch.push({ key: entry.key, value, expireIn: ttlMs });
          }
        }
        break;
      }
      if (batch.length === 500) {
        await this.write(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await this.write(batch);
  }

  /**
   * The write that records a subscription decision in the audit log.
   *
   * @param entry who asked for what, and the answer
   * @returns the write
   */
  auditWrite(entry: AuditRecord): KvWrite {
    return { key: keys.auditEntry(entry.at, entry.id), value: entry };
  }

  /**
   * The audit log, oldest first.
   *
   * @returns its entries
   */
  async *audit(): AsyncGenerator<AuditRecord> {
    for await (const entry of this.kv.list<AuditRecord>({ prefix: keys.audit() })) {
      yield entry.value;
    }
  }

  /**
   * A job's history.
   *
   * @param jobId the job
   * @returns `[n, envelope text]` in order
   */
  jobLog(jobId: string): AsyncGenerator<[number, string]> {
    return listTexts(this.kv, keys.jobLog(jobId));
  }
}

/**
 * Whether an idempotency record has lapsed. Records written before
 * `expires_at` existed rely on KV's own expiry alone.
 *
 * @param record the record
 * @param now the current time (epoch ms)
 * @returns true once `expires_at` has passed
 */
export function isExpired(record: IdempotencyRecord, now: number): boolean {
  return record.expires_at !== undefined && record.expires_at <= now;
}

/** The sessions some writes belong to: session logs and records, and jobs' owners. */
function sessionsOf(writes: KvWrite[]): string[] {
  const ids = new Set<string>();
  for (const { key, value } of writes) {
    if (key[0] !== V) continue;
    if ((key[1] === "slog" || key[1] === "sess") && typeof key[2] === "string") ids.add(key[2]);
    if (key[1] === "job" && typeof (value as JobRecord | undefined)?.session_id === "string") {
      ids.add((value as JobRecord).session_id);
    }
  }
  return [...ids];
}
