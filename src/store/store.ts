/**
 * The runtime's state in Deno KV: jobs, session logs, sessions and
 * idempotency keys. Every read and write of KV goes through here.
 *
 * @module
 */
import { reading, readingAll, StoreDamageError } from "./damage.ts";
import { keys, V } from "./keys.ts";
import { keyId, keyIdUnder } from "./key_id.ts";
import { GroupCommitter, isStorageFailure } from "./group_commit.ts";
import { describeCause, type StorageHealth, storageUnavailable } from "./storage_health.ts";
import {
  type KvWrite,
  kvWrite,
  listTextPages,
  listTexts,
  logEntries,
  logWrites,
  setOptions,
} from "./large_value.ts";
import type { AuditRecord, IdempotencyRecord, JobRecord, SessionRecord } from "./records.ts";
import { Revocations } from "./revocations.ts";
import { NodeDirectory, StartRefusedError } from "./nodes.ts";
import { whileBusy } from "./busy.ts";
import {
  type AllJobsPage,
  type AllJobsQuery,
  jobIndexWrites,
  type JobPage,
  type JobQuery,
  layout2LiveDeletes,
  listAllJobPage,
  listJobPage,
  type LiveEntry,
} from "./job_index.ts";
import { DEFAULT_RUNTIME_LOG, RuntimeLog, type RuntimeLogOptions } from "./runtime_log.ts";
import { TERMINAL_STATUSES } from "../protocol/messages.ts";
import { ArcpError } from "../protocol/errors.ts";

/**
 * Identities of the key prefixes every event writes under, computed once:
 * a write's identity then costs one concatenation (see `key_id.ts`).
 */
const PREFIX_IDS = {
  job: keyId(keys.job("").slice(0, 2)),
  session: keyId(keys.sessions()),
  sessionLog: keyId(keys.sessionLog("").slice(0, 2)),
  jobLog: keyId(keys.jobLog("").slice(0, 2)),
};

/**
 * The key layout this code writes: 2 added the status and agent indexes of
 * list_jobs; 3 keeps a live job in one index entry instead of three; 4
 * writes a finished job's agent entry without a value (its status entry
 * holds the listed fields).
 */
export const STORE_LAYOUT = 4;

/** Options of {@linkcode Store.open}. */
export interface StoreOptions {
  /** KV file path, or `:memory:`. */
  path: string;
  /** Bounds of the runtime's event log (default 30 days, 100,000 entries). */
  runtimeLog?: Partial<RuntimeLogOptions>;
}

/**
 * The key and key identity of the log of one session or job, kept for the
 * one appended to last: a commit appends runs of entries to one log (a
 * ticker's batch), which then work them out once, not once an entry.
 */
class LastLog {
  #of: string | undefined;
  #keyOf: (id: string) => Deno.KvKey;
  #prefix: string;
  /** The log's key. */
  key: Deno.KvKey = [];
  /** `keyId(key)`, what the committer joins the log's entries by. */
  logId = "";

  /**
   * @param keyOf the log's key, given its owner's id
   * @param prefix `keyId` of the key's first two parts
   */
  constructor(keyOf: (id: string) => Deno.KvKey, prefix: string) {
    this.#keyOf = keyOf;
    this.#prefix = prefix;
  }

  /**
   * Points at the log of `id`.
   *
   * @param id the session or job
   * @returns this, holding that log's key and identity
   */
  of(id: string): this {
    if (id !== this.#of) {
      this.#of = id;
      this.key = this.#keyOf(id);
      this.logId = keyIdUnder(this.#prefix, this.key, 2);
    }
    return this;
  }
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
  /** Node records, job claims and cross-node requests. */
  readonly nodes: NodeDirectory;
  /**
   * Whether KV is reached over KV Connect (`https://…`): only then does
   * `kv.watch` see other processes' writes; a local SQLite file's watch
   * fires for this process's writes alone (measured), so others are polled.
   */
  readonly remote: boolean;
  /** The runtime's own event log. */
  readonly runtimeLog: RuntimeLog;
  /**
   * Called when commits start failing for a storage reason (disk full, I/O
   * error), with the error and the sessions whose envelopes or records are
   * now held back. The writes are retried until they land, so nothing is
   * lost or reordered, but nothing waiting on them is sent meanwhile.
   */
  onCommitStall: ((error: unknown, sessionIds: string[]) => void) | undefined;
  /** Called when commits succeed again after a stall. */
  onCommitRecover: (() => void) | undefined;
  /** Called after each successful commit with its latency (seconds), for the operator metrics. */
  onCommit: ((seconds: number) => void) | undefined;
  /** The session log appended to last. */
  #sessionLog = new LastLog(keys.sessionLog, PREFIX_IDS.sessionLog);
  /** The job history appended to last. */
  #jobLog = new LastLog(keys.jobLog, PREFIX_IDS.jobLog);

  private constructor(kv: Deno.Kv, remote: boolean, runtimeLog: Partial<RuntimeLogOptions> = {}) {
    this.kv = kv;
    this.remote = remote;
    this.revocations = new Revocations(kv);
    this.nodes = new NodeDirectory(kv);
    this.committer = new GroupCommitter(kv, {
      onStall: (error, writes) => this.onCommitStall?.(error, sessionsOf(writes)),
      onRecover: () => this.onCommitRecover?.(),
      onCommit: (seconds) => this.onCommit?.(seconds),
      probe: { key: keys.storageProbe(), value: "written while commits fail, to see them succeed" },
    });
    this.runtimeLog = new RuntimeLog(kv, this.committer, { ...DEFAULT_RUNTIME_LOG, ...runtimeLog });
  }

  /**
   * Opens the store. The path is always explicit: `Deno.openKv()` with no
   * path would open a default database elsewhere.
   *
   * @param options where the KV file is
   * @returns the open store
   */
  static async open(options: StoreOptions): Promise<Store> {
    if (!isRemoteKv(options.path)) {
      return new Store(await Deno.openKv(options.path), false, options.runtimeLog);
    }
    // One read at start turns a bad URL or token into one clear line, whenever KV Connect fails.
    let kv: Deno.Kv | undefined;
    try {
      kv = await Deno.openKv(options.path);
      await kv.get(keys.layout());
    } catch (err) {
      kv?.close();
      throw remoteKvError(options.path, err);
    }
    return new Store(kv, true, options.runtimeLog);
  }

  /**
   * Follows one key: yields at once, then whenever its value changes, until
   * `signal` aborts. Over KV Connect this is `kv.watch`; on a local file,
   * whose watch misses other processes' writes, it polls with back-off
   * (from `minMs`, doubling to `maxMs` while nothing changes).
   *
   * @param key the key
   * @param signal stops following
   * @param pace the polling bounds (ms)
   * @returns the key's versionstamps, one per change seen
   */
  async *follow(
    key: Deno.KvKey,
    signal: AbortSignal,
    pace: { minMs: number; maxMs: number } = { minMs: 10, maxMs: 250 },
  ): AsyncGenerator<string | null> {
    if (this.remote) {
      const stream = this.kv.watch([key]);
      const reader = stream.getReader();
      const stop = () => reader.cancel().catch(() => {});
      signal.addEventListener("abort", stop, { once: true });
      try {
        while (!signal.aborted) {
          const next = await reader.read();
          if (next.done) return;
          yield next.value[0].versionstamp;
        }
      } finally {
        signal.removeEventListener("abort", stop);
        stop();
      }
      return;
    }
    let seen: string | null | undefined = undefined;
    let wait = pace.minMs;
    while (!signal.aborted) {
      const { versionstamp } = await this.kv.get(key);
      if (versionstamp !== seen) {
        seen = versionstamp;
        wait = pace.minMs;
        yield versionstamp;
      } else {
        wait = Math.min(wait * 2, pace.maxMs);
      }
      await pause(wait, signal);
    }
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
   * @param options `failFast`: while storage fails, reject (with
   *   {@linkcode storageUnavailable}) and drop the writes instead of holding
   *   them until they land; for writes nothing depends on yet. `onDurable`:
   *   called as soon as they are durable, before anything waiting on them or
   *   on a later write runs (see `GroupCommitter.write`)
   * @returns resolves once durable
   */
  async write(
    writes: KvWrite[],
    options: { failFast?: boolean; onDurable?: () => void } = {},
  ): Promise<void> {
    if (!options.failFast) return await this.committer.write(writes, options);
    try {
      await this.committer.write(writes, options);
    } catch (err) {
      throw isStorageFailure(err) ? storageUnavailable(err) : err;
    }
  }

  /**
   * Refuses a request that needs a write while storage fails, before it
   * changes anything.
   *
   * @throws {ArcpError} `INTERNAL_ERROR` with `details.storage: "failing"`
   *   while commits are failing
   */
  assertWritable(): void {
    const failure = this.committer.stalled;
    if (failure !== undefined) throw storageUnavailable(failure);
  }

  /**
   * Whether commits succeed, for health checks and metrics.
   *
   * @returns ok, or the failing commit's error and since when
   */
  health(): StorageHealth {
    const failure = this.committer.stalled;
    if (failure === undefined) return { ok: true };
    return {
      ok: false,
      error: describeCause(failure),
      since: new Date(this.committer.stalledSince!).toISOString(),
    };
  }

  // ---- jobs -------------------------------------------------------------

  /**
   * Reads a job.
   *
   * @param jobId the job id
   * @returns the record, or null
   * @throws {StoreDamageError} when KV cannot read it
   */
  async getJob(jobId: string): Promise<JobRecord | null> {
    return (await reading(`job record of ${jobId}`, () => this.kv.get<JobRecord>(keys.job(jobId))))
      .value;
  }

  /**
   * The writes that store a job record and keep its indexes in step.
   *
   * @param job the record
   * @param first no commit before this one wrote the job (see `jobIndexWrites`)
   * @returns writes for the record and its index entries (see
   *   `jobIndexWrites`): while it is live its live entry (list_jobs, the
   *   restart's reconciliation), once it has ended its list_jobs entries and
   *   the end-time entry retention reads
   */
  jobWrites(job: JobRecord, first = false): KvWrite[] {
    const jobKey = keys.job(job.job_id);
    return [
      kvWrite(jobKey, job, undefined, keyIdUnder(PREFIX_IDS.job, jobKey, 2)),
      ...jobIndexWrites(job, first),
    ];
  }

  /**
   * The writes of a job record rewritten by one of its envelopes. While the
   * job is live that is the record alone: its live index entry was written
   * with it when it was created and stays as it is until it ends (it names
   * nothing that changes). Its terminal envelope replaces it, as
   * {@linkcode jobWrites} does.
   *
   * @param job the record
   * @param first no commit before this one wrote the job (see `jobIndexWrites`)
   * @returns the writes
   */
  jobUpdateWrites(job: JobRecord, first = false): KvWrite[] {
    if (TERMINAL_STATUSES.has(job.status)) return this.jobWrites(job, first);
    const jobKey = keys.job(job.job_id);
    return [kvWrite(jobKey, job, undefined, keyIdUnder(PREFIX_IDS.job, jobKey, 2))];
  }

  /**
   * Brings a store written by an earlier layout up to this one. From layout
   * 1 every job gets its list_jobs index entries (and, once ended, its place
   * in the retention index), and the layout-1 index goes. From layouts 1 and
   * 2 every live job's entries move to its one live entry (the old
   * `[v1, "live", id]` entry and, from 2, its `"live"` list_jobs entries go):
   * that step reads only the live jobs. Layout 4 needs no step: agent
   * entries written before it keep their copy of the listed job, which
   * listings read as they find it (rewriting every finished job's entry at
   * start would cost more than the bytes it frees). Idempotent and batched;
   * a store already at this layout costs one read. Run it before serving.
   *
   * @returns how many job records were indexed or moved (0 when nothing was to do)
   */
  async migrate(): Promise<number> {
    const layout = (await this.kv.get<number>(keys.layout())).value;
    if (layout === STORE_LAYOUT) return 0;
    let batch: KvWrite[] = [];
    let bytes = 0;
    const flush = async () => {
      if (batch.length > 0) await this.write(batch);
      batch = [];
      bytes = 0;
    };
    const add = async (writes: KvWrite[]) => {
      batch.push(...writes);
      bytes += writes.reduce((n, w) => n + (w.value ? JSON.stringify(w.value).length : 0), 0);
      // Well inside one commit's limits (mutations and bytes).
      if (batch.length >= 400 || bytes >= 200_000) await flush();
    };
    let n = 0;
    if (layout === null) {
      for await (const e of this.kv.list<JobRecord>({ prefix: keys.jobs() }, { batchSize: 500 })) {
        await add(jobIndexWrites(e.value));
        n++;
      }
      for await (
        const e of this.kv.list({ prefix: keys.legacyPrincipalJobs() }, { batchSize: 500 })
      ) {
        await add([{ key: e.key }]);
      }
    }
    for await (const e of this.kv.list({ prefix: keys.legacyLiveJobs() }, { batchSize: 500 })) {
      const job = await this.getJob(e.key.at(-1) as string);
      await add([{ key: e.key }]);
      if (!job) continue;
      await add([...layout2LiveDeletes(job), ...jobIndexWrites(job)]);
      if (layout !== null) n++;
    }
    await add([{ key: keys.layout(), value: STORE_LAYOUT }]);
    await flush();
    return n;
  }

  /**
   * Creates a job and claims its idempotency key in one atomic step, so two
   * racing submits with one key cannot both create a job.
   *
   * @param job the new job
   * @param idempotency the key to claim, if any
   * @param cap the principal's cap on live jobs, when other nodes share the
   *   KV: the job is created only while its principal's live jobs on every
   *   node are below it, checked under the principal's admission gate key
   * @returns true when created; false when the key was claimed meanwhile
   * @throws {ArcpError} `INTERNAL_ERROR` with `details.storage` when commits
   *   are failing (disk full, I/O error): the job is refused rather than
   *   accepted late; `INTERNAL_ERROR` with `details.cap` at the cap
   */
  async createJob(
    job: JobRecord,
    idempotency?: { principal: string; keyHash: string; record: IdempotencyRecord; ttlMs: number },
    cap?: JobCap,
  ): Promise<boolean> {
    // While the store cannot commit at all, refuse the job now rather than
    // accept it whenever the disk has room again.
    this.assertWritable();
    if (!idempotency && !cap) {
      await this.write(this.jobWrites(job), { failFast: true });
      return true;
    }
    try {
      return await this.#claimAndCreate(job, idempotency, cap);
    } catch (err) {
      throw isStorageFailure(err) ? storageUnavailable(err) : err;
    }
  }

  async #claimAndCreate(
    job: JobRecord,
    idempotency:
      | { principal: string; keyHash: string; record: IdempotencyRecord; ttlMs: number }
      | undefined,
    cap: JobCap | undefined,
  ): Promise<boolean> {
    const key = idempotency && keys.idempotency(idempotency.principal, idempotency.keyHash);
    const gate = cap && keys.admissionGate(cap.principal);
    // Earlier queued writes (e.g. this session's log) must land first; a
    // storage failure meanwhile refuses the job instead of waiting.
    await this.committer.flush({ failFast: true });
    // A key past its `expires_at` may still be in KV (expiry is eventual):
    // it is free to claim, guarded by its versionstamp. Retry when the
    // sweeper deleted it between our read and our write, or (with a cap)
    // another node admitted a job of this principal meanwhile.
    for (let attempt = 0; attempt < (cap ? 20 : 3); attempt++) {
      const existing = key ? await this.kv.get<IdempotencyRecord>(key) : undefined;
      if (existing?.value && !isExpired(existing.value, Date.now())) return false;
      // The gate's versionstamp is the count's: a count read under a gate
      // no other admission has passed since is still the count at commit.
      const gateEntry = gate ? await this.kv.get(gate) : undefined;
      if (cap) await this.#assertUnderCap(cap);
      const commit = () => {
        const op = this.kv.atomic();
        if (key && idempotency && existing) {
          op.check({ key, versionstamp: existing.versionstamp }).set(key, {
            ...idempotency.record,
            expires_at: Date.now() + idempotency.ttlMs,
          }, { expireIn: idempotency.ttlMs });
        }
        if (gate && gateEntry) {
          op.check({ key: gate, versionstamp: gateEntry.versionstamp }).set(gate, Date.now());
        }
        for (const w of this.jobWrites(job)) {
          if (w.value === undefined) op.delete(w.key);
          else op.set(w.key, w.value, setOptions(w));
        }
        return op.commit();
      };
      if ((await whileBusy(commit)).ok) return true;
    }
    if (cap && !key) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        "too many nodes admitted jobs of this principal at once; retry",
        { cap: "concurrent_jobs", limit: cap.limit },
      );
    }
    return false;
  }

  /** Refuses a job when its principal's live jobs, on every node, fill the cap. */
  async #assertUnderCap(cap: JobCap): Promise<void> {
    let n = 0;
    const prefix = keys.principalLiveJobs(cap.principal);
    for await (const _ of this.kv.list({ prefix }, { limit: cap.limit, batchSize: cap.limit })) n++;
    if (n >= cap.limit) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `principal has ${cap.limit} live jobs, the most allowed`,
        { cap: "concurrent_jobs", limit: cap.limit },
      );
    }
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
   * @throws {StoreDamageError} when KV cannot read the index or a record
   */
  async *liveJobs(): AsyncGenerator<JobRecord> {
    const index = this.kv.list({ prefix: keys.liveJobs() });
    for await (const entry of readingAll("the live-jobs index", index)) {
      const job = await this.getJob(entry.key.at(-1) as string);
      if (job) yield job;
    }
  }

  /**
   * The live jobs a session submitted, from the live index alone.
   *
   * @param sessionId the session
   * @returns their ids
   */
  async liveJobIdsOf(sessionId: string): Promise<string[]> {
    const ids: string[] = [];
    for await (const e of this.kv.list<LiveEntry>({ prefix: keys.liveJobs() })) {
      if (e.value.session_id === sessionId) ids.push(e.key.at(-1) as string);
    }
    return ids;
  }

  /**
   * Follows a job's record (every envelope of the job rewrites it): yields
   * at once, then after each change. See {@linkcode follow}.
   *
   * @param jobId the job
   * @param signal stops following
   * @returns the record's versionstamps
   */
  followJob(jobId: string, signal: AbortSignal): AsyncGenerator<string | null> {
    return this.follow(keys.job(jobId), signal);
  }

  /**
   * Takes a session for this node run if its holder is still `from`, so
   * two nodes cannot both become the writer of its log.
   *
   * @param sessionId the session
   * @param from the holder it was read with (undefined: none)
   * @param to this node run
   * @param ttlMs how long KV keeps the record
   * @returns the record as taken, or undefined when another node changed it first
   */
  async takeSession(
    sessionId: string,
    from: string | undefined,
    to: string,
    ttlMs: number,
  ): Promise<SessionRecord | undefined> {
    const key = keys.session(sessionId);
    const entry = await this.kv.get<SessionRecord>(key);
    if (!entry.value || entry.value.node_run !== from) return undefined;
    const record: SessionRecord = { ...entry.value, node_run: to, updated_at: Date.now() };
    const res = await whileBusy(() =>
      this.kv.atomic().check(entry).set(key, record, { expireIn: ttlMs }).commit()
    );
    return res.ok ? record : undefined;
  }

  /**
   * A page of a principal's jobs, in creation order, read from the list_jobs
   * indexes (see `job_index.ts`): its cost follows the page, not the store.
   *
   * @param principal whose jobs
   * @param query filters and paging
   * @returns the page
   */
  listJobs(principal: string, query: JobQuery): Promise<JobPage> {
    return listJobPage(this.kv, principal, query);
  }

  /**
   * A page of every principal's jobs, newest first, read from the job
   * records (see `listAllJobPage`): for operators, who see all jobs.
   *
   * @param query filter, cursor and bounds
   * @returns the page
   */
  listAllJobs(query: AllJobsQuery): Promise<AllJobsPage> {
    return listAllJobPage(this.kv, query);
  }

  /**
   * A job's history from a position on, without the completeness checks of
   * {@linkcode Store.jobLog} (a reader of a live job reads while it grows).
   *
   * @param jobId the job
   * @param after list entries with `n > after`
   * @returns `[n, envelope text]` in order
   * @throws {StoreDamageError} at the first entry KV cannot read or that does not reassemble
   */
  jobLogAfter(jobId: string, after: number): AsyncGenerator<[number, string]> {
    return listTexts(this.kv, keys.jobLog(jobId), after, `the history of job ${jobId}`);
  }

  // ---- sessions and logs ------------------------------------------------

  /**
   * Reads a session record.
   *
   * @param sessionId the session id
   * @returns the record, or null
   * @throws {StoreDamageError} when KV cannot read it
   */
  async getSession(sessionId: string): Promise<SessionRecord | null> {
    return (await reading(
      `session record of ${sessionId}`,
      () => this.kv.get<SessionRecord>(keys.session(sessionId)),
    )).value;
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
    return kvWrite(
      key,
      { ...session, updated_at: Date.now() },
      ttlMs,
      keyIdUnder(PREFIX_IDS.session, key, 2),
    );
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
    const log = this.#sessionLog.of(sessionId);
    return logWrites(log.key, seq, text, ttlMs, log.logId);
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
    const log = this.#jobLog.of(jobId);
    return logWrites(log.key, n, text, undefined, log.logId);
  }

  /**
   * A session's logged envelopes after a seq, a stored value (the entries of
   * one commit) at a time.
   *
   * @param sessionId the session
   * @param afterSeq list seqs greater than this
   * @returns pages of `[seq, envelope text]`, in order
   * @throws {StoreDamageError} at the first entry KV cannot read or that does not reassemble
   */
  sessionLog(sessionId: string, afterSeq: number): AsyncGenerator<Array<[number, string]>> {
    return listTextPages(
      this.kv,
      keys.sessionLog(sessionId),
      afterSeq,
      `the session log of ${sessionId}`,
    );
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
   * @param record the session record, committed with the last of the
   *   deletes (the log's tail may hold the only copy of the session's
   *   `last_seq`, see {@linkcode lastLoggedSeq}); written even when nothing
   *   is left to free
   * @returns resolves once deleted
   * @throws {ArcpError} `INTERNAL_ERROR` with `details.storage` while storage
   *   fails: freeing is never held back (the entries stay until a later ack
   *   or their TTL), so nothing waits on it
   */
  async freeSessionLog(
    sessionId: string,
    after: number,
    upTo: number,
    ttlMs: number,
    record?: KvWrite,
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
        await this.write(batch, { failFast: true });
        batch = [];
      }
    }
    if (record) batch.push(record);
    if (batch.length > 0) await this.write(batch, { failFast: true });
  }

  /**
   * The highest seq a session's log holds: a commit of log entries rewrites
   * the session record only when more than its `last_seq` changed (or it is
   * due a refresh), so the record's `last_seq` may lag the log's tail. A
   * session read from KV takes the higher of the two. Freeing the log
   * commits the record with the last of its deletes, so the tail never goes
   * before a record that has it.
   *
   * @param sessionId the session
   * @returns the seq of the newest entry, or 0 when the log is empty
   * @throws {StoreDamageError} when KV cannot read it
   */
  async lastLoggedSeq(sessionId: string): Promise<number> {
    const prefix = keys.sessionLog(sessionId);
    const list = this.kv.list({ prefix }, { reverse: true, limit: 1 });
    for await (const entry of readingAll(`the session log of ${sessionId}`, list)) {
      // A value of several entries, or a large entry's head or part: the seq is its key's.
      const seq = entry.key[prefix.length];
      return typeof seq === "number" ? seq : 0;
    }
    return 0;
  }

  /**
   * The write that records a subscription decision in the audit log.
   *
   * @param entry who asked for what, and the answer
   * @returns the write
   */
  auditWrite(entry: AuditRecord): KvWrite {
    return kvWrite(keys.auditEntry(entry.at, entry.id), entry);
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
   * A job's history. Entries must follow one another without a hole and,
   * while the job is live (its history is never swept then), run from the
   * first to the last its record counts; anything else is damage.
   *
   * @param jobId the job
   * @param after list entries after this position (default: from the first)
   * @returns `[n, envelope text]` in order
   * @throws {StoreDamageError} at the first entry KV cannot read, that does
   *   not reassemble, or that is missing
   */
  async *jobLog(jobId: string, after = -1): AsyncGenerator<[number, string]> {
    const what = `the history of job ${jobId}`;
    // Read before the history: every entry it counts was committed with it.
    const job = await this.getJob(jobId);
    const live = job !== null && !TERMINAL_STATUSES.has(job.status);
    let expect: number | undefined = live ? after + 1 : undefined;
    for await (const [n, text] of listTexts(this.kv, keys.jobLog(jobId), after, what)) {
      // An ended job's history is swept from its start: its first entry may be any, and a
      // hole behind an entry the sweeper has since deleted is the sweep, not damage.
      if (expect !== undefined && n !== expect) {
        if (!live) {
          // Entry expect - 1 ended its value (the next one is not in it), so
          // that value is at its key, shared or not.
          const key = keys.jobLogEntry(jobId, expect - 1);
          if ((await reading(what, () => this.kv.get(key))).versionstamp === null) return;
        }
        throw missingEntries(what, expect, n - 1, jobId);
      }
      expect = n + 1;
      yield [n, text];
    }
    if (live && job.log_length > (expect ?? 0)) {
      throw missingEntries(what, expect ?? 0, job.log_length - 1, jobId);
    }
  }
}

/** A principal's cap on live jobs, held across every node on the KV. */
export interface JobCap {
  /** Whose jobs. */
  principal: string;
  /** Live jobs it may have. */
  limit: number;
}

/**
 * Whether a KV path names a KV Connect endpoint (self-hosted `denokv` or
 * hosted Deno KV) rather than a local file.
 *
 * @param path the KV path
 * @returns true for `http://` and `https://` URLs
 */
export function isRemoteKv(path: string): boolean {
  return /^https?:\/\//i.test(path);
}

/**
 * The one-line error of a KV Connect database that would not open: a
 * refused or missing token, or a server that cannot be reached. The URL is
 * shown without credentials; the token never is.
 */
function remoteKvError(path: string, err: unknown): StartRefusedError {
  const where = new URL(path);
  where.username = "";
  where.password = "";
  where.search = "";
  const text = (err instanceof Error ? err.message : String(err)).split("\n")[0];
  const why = /\b(401|403)\b|unauthori[sz]ed|forbidden/i.test(text)
    ? "the access token was refused (set DENO_KV_ACCESS_TOKEN to a token the server accepts)"
    : /DENO_KV_ACCESS_TOKEN|access token/i.test(text)
    ? "no access token (set DENO_KV_ACCESS_TOKEN)"
    : /connect|dns|resolve|refused|timed? ?out|unreachable/i.test(text)
    ? "the server cannot be reached"
    : `it would not open (${text.replace(/Bearer\s+\S+/gi, "Bearer …")})`;
  return new StartRefusedError(
    `cannot open KV Connect database at ${where.origin}${where.pathname}: ${why}`,
  );
}

/** Waits `ms`, or less when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
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

/** Entries `from`…`to` of a job's history are not in KV. */
function missingEntries(what: string, from: number, to: number, jobId: string): StoreDamageError {
  const which = from === to ? `entry ${from}` : `entries ${from}–${to}`;
  return new StoreDamageError(
    "missing",
    `${which} of ${what} ${from === to ? "is" : "are"} missing`,
    {
      job_id: jobId,
      from,
      to,
    },
  );
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
