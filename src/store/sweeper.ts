/**
 * Retention: a periodic sweep that deletes what no client can ask for any
 * more, so KV does not grow without bound.
 *
 * - A session record and its whole log once the session is detached and its
 *   resume window has passed, unless this process holds it in memory
 *   (connected, or detached and still resumable). A record without
 *   `detached_at` belongs to a session whose process died while it was
 *   attached; it counts as detached since the later of its last write and
 *   this process's start (the registry makes such a session resumable only
 *   after a restart).
 * - Idempotency keys past their `expires_at`.
 * - The histories of jobs that ended more than the history TTL ago, and
 *   the finished jobs themselves (record, list_jobs index entries, the
 *   idempotency key that names them) once they ended more than the job
 *   retention ago. A history never outlives its job's record.
 * - Audit entries older than the audit retention.
 *
 * Nothing inside a resume window is touched, acknowledged or not: a
 * session's log is its own, so deleting a job never deletes an envelope a
 * session holds. A job is deleted only while its record is terminal
 * (checked in the deleting commit, against the record's versionstamp), so a
 * live job is never dropped. Deletes go through the group committer in
 * bounded batches, and one sweep deletes at most a bounded number of
 * entries (the next sweep carries on). A session is swept in a crash-safe
 * order: its record is replaced by a tombstone in one atomic step (guarded
 * by the record's versionstamp, so a record written meanwhile is left
 * alone), then its log is deleted, then the tombstone. A finished job's
 * entry in the end-time index goes last, with its record, so a sweep cut
 * short finds the job again.
 *
 * @module
 */
import { keys } from "./keys.ts";
import { type KvWrite, kvWrite } from "./large_value.ts";
import { jobIndexDeletes } from "./job_index.ts";
import type { IdempotencyRecord, JobRecord, SessionRecord } from "./records.ts";
import { isExpired, type Store } from "./store.ts";
import { TERMINAL_STATUSES } from "../protocol/messages.ts";

/** Options of {@linkcode Sweeper}. */
export interface SweeperOptions {
  /** The store to sweep. */
  store: Store;
  /** Time between sweeps (ms). */
  intervalMs: number;
  /** The sessions' resume window (ms). */
  resumeWindowMs: number;
  /** How long a terminal job's history is kept after it ended (ms); `Infinity` keeps it. */
  jobHistoryTtlMs: number;
  /**
   * How long a terminal job (record, index entries, idempotency key) is kept
   * after it ended (ms); `Infinity` (the default) keeps it. Its history goes
   * with it at the latest.
   */
  jobRetentionMs?: number;
  /** How long audit entries are kept (ms); `Infinity` (the default) keeps them. */
  auditRetentionMs?: number;
  /**
   * Whether this process, or another live node sharing the KV, holds a
   * session in memory (connected or still resumable).
   */
  isHeld: (sessionId: string, record?: SessionRecord) => boolean;
  /** Reports a sweep that failed (it is retried at the next interval). */
  onError?: (error: unknown) => void;
  /** Deletes per commit; default 500 (KV allows 1000 mutations per commit). */
  batchSize?: number;
  /** Entries one sweep deletes at most; default 50,000. */
  maxDeletesPerSweep?: number;
  /** The clock (epoch ms); default `Date.now`. */
  now?: () => number;
}

const DAY_MS = 24 * 3600 * 1000;

/** The runtime's defaults of the sweep's tunables. */
export const DEFAULT_SWEEP: Readonly<
  Required<
    Pick<
      SweeperOptions,
      | "intervalMs"
      | "jobHistoryTtlMs"
      | "jobRetentionMs"
      | "auditRetentionMs"
      | "batchSize"
      | "maxDeletesPerSweep"
    >
  >
> = {
  intervalMs: 60_000,
  jobHistoryTtlMs: 7 * DAY_MS,
  jobRetentionMs: 7 * DAY_MS,
  // Longer than the jobs they name: an audit trail is read after the fact.
  auditRetentionMs: 30 * DAY_MS,
  batchSize: 500,
  maxDeletesPerSweep: 50_000,
};

/** What one sweep deleted. */
export interface SweepReport {
  /** Session records deleted. */
  sessions: number;
  /** Job histories deleted. */
  jobHistories: number;
  /** Finished jobs deleted (record and index entries). */
  jobs: number;
  /** Audit entries deleted. */
  auditEntries: number;
  /** Idempotency keys deleted. */
  idempotencyKeys: number;
  /** KV entries deleted in all. */
  entries: number;
  /** Whether the sweep stopped at its delete budget (more is left for the next one). */
  truncated: boolean;
}

/** Checks per atomic operation for guarded deletes (KV allows 100). */
const CHECKS_PER_COMMIT = 50;

/** Finished jobs deleted per commit: a record and an idempotency key check each. */
const JOBS_PER_COMMIT = CHECKS_PER_COMMIT / 2;

/** A finished job due for deletion: its entry in the end-time index and its id. */
interface DueJob {
  entry: Deno.KvKey;
  jobId: string;
}

/** Thrown inside a sweep to end it early (stopped, budget spent, commits failing). */
class SweepCut extends Error {}

/**
 * Deletes expired sessions, idempotency keys, job histories, finished jobs
 * and audit entries, every `intervalMs`, one sweep at a time.
 *
 * @example
 * ```ts ignore
 * import { Store } from "./store.ts";
 * import { Sweeper } from "./sweeper.ts";
 * const store = await Store.open({ path: ":memory:" });
 * const sweeper = new Sweeper({
 *   store,
 *   intervalMs: 60_000,
 *   resumeWindowMs: 600_000,
 *   jobHistoryTtlMs: 7 * 24 * 3600 * 1000,
 *   isHeld: () => false,
 * });
 * sweeper.start();
 * await sweeper.stop();
 * await store.close();
 * ```
 */
export class Sweeper {
  #options: SweeperOptions;
  #store: Store;
  #now: () => number;
  #batchSize: number;
  #maxDeletes: number;
  /** When this process started holding sessions (epoch ms). */
  #startedAt: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<SweepReport> | undefined;
  #stopped = false;
  #started = false;
  #budget = 0;

  /**
   * Creates a sweeper; call {@linkcode Sweeper.start} to run it.
   *
   * @param options what to sweep, how often, and the retention rules
   */
  constructor(options: SweeperOptions) {
    this.#options = options;
    this.#store = options.store;
    this.#now = options.now ?? Date.now;
    this.#batchSize = Math.max(1, Math.min(options.batchSize ?? DEFAULT_SWEEP.batchSize, 900));
    this.#maxDeletes = options.maxDeletesPerSweep ?? DEFAULT_SWEEP.maxDeletesPerSweep;
    this.#startedAt = this.#now();
  }

  /** Starts sweeping every `intervalMs` (the first sweep after one interval). */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#schedule();
  }

  /**
   * Stops sweeping. A sweep in progress stops at its next step.
   *
   * @returns resolves once no sweep is running
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => {});
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(async () => {
      this.#timer = undefined;
      try {
        await this.sweep();
      } catch (err) {
        if (!this.#stopped) this.#options.onError?.(err);
      }
      this.#schedule();
    }, this.#options.intervalMs);
  }

  /**
   * Runs one sweep now (or joins the one running).
   *
   * @returns what it deleted
   */
  sweep(): Promise<SweepReport> {
    this.#running ??= this.#sweep().finally(() => this.#running = undefined);
    return this.#running;
  }

  async #sweep(): Promise<SweepReport> {
    const report: SweepReport = {
      sessions: 0,
      jobHistories: 0,
      jobs: 0,
      auditEntries: 0,
      idempotencyKeys: 0,
      entries: 0,
      truncated: false,
    };
    this.#budget = this.#maxDeletes;
    try {
      await this.#finishSweptSessions();
      await this.#sweepSessions(report);
      await this.#sweepIdempotency(report);
      await this.#sweepJobs(report);
      await this.#sweepAudit(report);
    } catch (err) {
      if (!(err instanceof SweepCut)) throw err;
      report.truncated = true;
    }
    report.entries = this.#maxDeletes - this.#budget;
    return report;
  }

  /** Stops the sweep when stopped, out of budget, or while commits fail. */
  #step(): void {
    if (this.#stopped) throw new SweepCut("sweeper stopped");
    if (this.#budget <= 0) throw new SweepCut("delete budget spent");
    // Deletes would only queue behind writes a storage failure holds back.
    if (this.#store.committer.stalled !== undefined) throw new SweepCut("commits are failing");
  }

  /**
   * Deletes every entry a selector lists, in bounded batches; the budget may
   * stop it midway.
   *
   * @returns how many entries it deleted
   */
  async #deleteAll(selector: Deno.KvListSelector): Promise<number> {
    let batch: KvWrite[] = [];
    let deleted = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const writes = batch;
      batch = [];
      await this.#store.write(writes);
      this.#budget -= writes.length;
      deleted += writes.length;
    };
    for await (const entry of this.#store.kv.list(selector, { batchSize: this.#batchSize })) {
      batch.push(kvWrite(entry.key));
      if (batch.length >= Math.min(this.#batchSize, this.#budget)) {
        await flush();
        this.#step();
      }
    }
    await flush();
    return deleted;
  }

  /** Deletes every entry under a prefix, like `#deleteAll`. */
  async #deletePrefix(prefix: Deno.KvKey): Promise<void> {
    await this.#deleteAll({ prefix });
  }

  /** Logs of sessions whose record an earlier sweep deleted (it stopped or the process died). */
  async #finishSweptSessions(): Promise<void> {
    for await (const entry of this.#store.kv.list({ prefix: keys.sweptSessions() })) {
      this.#step();
      const sessionId = entry.key.at(-1) as string;
      await this.#deletePrefix(keys.sessionLog(sessionId));
      await this.#store.write([kvWrite(entry.key)]);
      this.#budget--;
    }
  }

  async #sweepSessions(report: SweepReport): Promise<void> {
    const now = this.#now();
    const windowMs = this.#options.resumeWindowMs;
    for await (const entry of this.#store.kv.list<SessionRecord>({ prefix: keys.sessions() })) {
      this.#step();
      const record = entry.value;
      const sessionId = entry.key.at(-1) as string;
      if (this.#options.isHeld(sessionId, record)) continue;
      const detachedAt = record.detached_at ??
        Math.max(record.updated_at ?? 0, this.#startedAt);
      if (detachedAt + windowMs >= now) continue;
      // The record goes (and the tombstone comes) only if nobody wrote it
      // since we read it; a resume cannot find it afterwards.
      const res = await this.#store.kv.atomic()
        .check({ key: entry.key, versionstamp: entry.versionstamp })
        .delete(entry.key)
        .set(keys.sweptSession(sessionId), now)
        .commit();
      if (!res.ok || this.#options.isHeld(sessionId)) {
        // Restored while we decided: put it back untouched.
        if (res.ok) {
          await this.#store.kv.atomic().check({ key: entry.key, versionstamp: null })
            .set(entry.key, record).delete(keys.sweptSession(sessionId)).commit();
        }
        continue;
      }
      this.#budget--;
      report.sessions++;
      await this.#deletePrefix(keys.sessionLog(sessionId));
      await this.#store.write([kvWrite(keys.sweptSession(sessionId))]);
    }
  }

  async #sweepIdempotency(report: SweepReport): Promise<void> {
    const now = this.#now();
    let guarded: Array<Deno.KvEntry<IdempotencyRecord>> = [];
    const flush = async () => {
      if (guarded.length === 0) return;
      const op = this.#store.kv.atomic();
      for (const e of guarded) op.check({ key: e.key, versionstamp: e.versionstamp }).delete(e.key);
      const n = guarded.length;
      guarded = [];
      // Refused when a submit re-claimed one of the keys meanwhile; the rest
      // are deleted at the next sweep.
      if ((await op.commit()).ok) {
        this.#budget -= n;
        report.idempotencyKeys += n;
      }
      this.#step();
    };
    for await (
      const entry of this.#store.kv.list<IdempotencyRecord>({ prefix: keys.idempotencyKeys() }, {
        batchSize: this.#batchSize,
      })
    ) {
      if (!entry.value || !isExpired(entry.value, now)) continue;
      guarded.push(entry);
      if (guarded.length >= Math.min(CHECKS_PER_COMMIT, this.#budget)) await flush();
    }
    await flush();
  }

  /**
   * Finished jobs, in two stages of the end-time index: `ended` entries past
   * the history TTL lose their history and move to `kept` (or, past the job
   * retention too, go with their job); `kept` entries past the job retention
   * go with their job.
   */
  async #sweepJobs(report: SweepReport): Promise<void> {
    const now = this.#now();
    const jobTtl = this.#options.jobRetentionMs ?? Infinity;
    const historyTtl = Math.min(this.#options.jobHistoryTtlMs, jobTtl);
    const jobCutoff = now - jobTtl;
    let due: DueJob[] = [];
    const take = async (entry: Deno.KvKey, jobId: string) => {
      due.push({ entry, jobId });
      if (due.length >= JOBS_PER_COMMIT) {
        const batch = due;
        due = [];
        await this.#deleteJobs(batch, report);
      }
    };
    if (Number.isFinite(historyTtl)) {
      const prefix = keys.endedJobs();
      const selector = { start: prefix, end: [...prefix, now - historyTtl] };
      for await (const entry of this.#store.kv.list(selector, { batchSize: this.#batchSize })) {
        this.#step();
        const [endedMs, jobId] = entry.key.slice(-2) as [number, string];
        const job = (await this.#store.kv.get<JobRecord>(keys.job(jobId))).value;
        if (job && !TERMINAL_STATUSES.has(job.status)) {
          // A stale entry: the job is live, and its history with it.
          await this.#store.write([kvWrite(entry.key)]);
          this.#budget--;
          continue;
        }
        await this.#deletePrefix(keys.jobLog(jobId));
        report.jobHistories++;
        if (endedMs < jobCutoff) await take(entry.key, jobId);
        else {
          await this.#store.write([
            kvWrite(entry.key),
            kvWrite(keys.keptJob(endedMs, jobId), entry.value),
          ]);
          this.#budget--;
        }
      }
    }
    if (Number.isFinite(jobCutoff)) {
      const prefix = keys.keptJobs();
      const selector = { start: prefix, end: [...prefix, jobCutoff] };
      for await (const entry of this.#store.kv.list(selector, { batchSize: this.#batchSize })) {
        this.#step();
        await take(entry.key, entry.key.at(-1) as string);
      }
    }
    if (due.length > 0) await this.#deleteJobs(due, report);
  }

  /**
   * Deletes finished jobs: record, index entries, end-time entry and the
   * idempotency key when it still names the job, in one commit guarded by
   * the versionstamps read. A record that is not terminal is kept (only its
   * stale end-time entry goes); one written meanwhile waits for the next sweep.
   */
  async #deleteJobs(due: DueJob[], report: SweepReport): Promise<void> {
    const kv = this.#store.kv;
    const records: Array<Deno.KvEntryMaybe<JobRecord>> = [];
    for (let i = 0; i < due.length; i += 10) {
      records.push(
        ...await kv.getMany<JobRecord[]>(due.slice(i, i + 10).map((d) => keys.job(d.jobId))),
      );
    }
    const ops = await Promise.all(due.map(async (d, i) => {
      const record = records[i];
      const job = record.value;
      const writes: KvWrite[] = [kvWrite(d.entry)];
      const checks: Deno.AtomicCheck[] = [];
      const finished = job !== null && TERMINAL_STATUSES.has(job.status);
      if (finished) {
        checks.push({ key: record.key, versionstamp: record.versionstamp });
        writes.push(
          kvWrite(record.key),
          ...jobIndexDeletes(job),
        );
        if (job.idempotency_hash) {
          const idem = await kv.get<IdempotencyRecord>(
            keys.idempotency(job.principal, job.idempotency_hash),
          );
          if (idem.value?.job_id === d.jobId) {
            checks.push({ key: idem.key, versionstamp: idem.versionstamp });
            writes.push(kvWrite(idem.key));
          }
        }
      } else if (job) {
        // Not finished (it never should be here): the job stays, the entry goes.
        checks.push({ key: record.key, versionstamp: record.versionstamp });
      }
      return { checks, writes, deletesJob: finished };
    }));
    const commit = async (group: typeof ops) => {
      const op = kv.atomic();
      for (const { checks, writes } of group) {
        for (const c of checks) op.check(c);
        for (const w of writes) op.delete(w.key);
      }
      return (await op.commit()).ok;
    };
    const done = (group: typeof ops) => {
      for (const o of group) {
        this.#budget -= o.writes.length;
        if (o.deletesJob) report.jobs++;
      }
    };
    if (await commit(ops)) done(ops);
    else {
      // One of them changed since it was read: the rest go one by one.
      for (const o of ops) if (await commit([o])) done([o]);
    }
    this.#step();
  }

  async #sweepAudit(report: SweepReport): Promise<void> {
    const ttl = this.#options.auditRetentionMs ?? Infinity;
    if (!Number.isFinite(ttl)) return;
    const prefix = keys.audit();
    report.auditEntries += await this.#deleteAll({
      start: prefix,
      end: [...prefix, this.#now() - ttl],
    });
  }
}
