/**
 * Group commit: writes queued in the same tick share one atomic KV commit,
 * so the durability rule (committed before sent) costs one fsync per batch
 * rather than one per event.
 *
 * A commit that fails because of the storage (disk full, I/O error, the
 * database locked) does not drop or reorder anything: the writes stay at the
 * head of the queue and are retried with backoff, ahead of everything queued
 * later, and their promises settle only once they are durable. What waits on
 * them (the delivery of an envelope) therefore waits too, so nothing is sent
 * before it is committed and no later envelope overtakes an earlier one. The
 * stall is reported through {@linkcode GroupCommitterOptions.onStall} as soon
 * as it happens. A write that KV refuses for its own sake (a value or key too
 * large, too many mutations) is rejected at once, alone: it never holds up or
 * fails the writes it was batched with.
 *
 * A write that nothing depends on yet (a new session, a new job, freeing
 * acknowledged log entries) may ask to fail fast instead: while commits are
 * failing it is refused at once, and if a failure holds it back it is taken
 * out of the queue and refused, so a request that needs storage is answered
 * with an error rather than left waiting for the disk. While nothing else is
 * queued, a probe write ({@linkcode GroupCommitterOptions.probe}) keeps
 * retrying, so the committer learns when storage works again.
 *
 * @module
 */
import type { KvWrite } from "./large_value.ts";

/** Stay well inside KV's 1000 mutations and ~800 KiB per atomic operation. */
const MAX_MUTATIONS = 900;
const MAX_BYTES = 600_000;

/** Retry backoff after a storage failure: first wait, and the cap (ms). */
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2000;

interface Pending {
  writes: KvWrite[];
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
  /** Commit this one alone (set after a batch it was in was refused). */
  solo: boolean;
  /** Already reported through `onStall`. */
  reported: boolean;
  /** Refused, not held, when a storage failure stops it. */
  failFast: boolean;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
  failFast: boolean;
}

/** Options of {@linkcode GroupCommitter}. */
export interface GroupCommitterOptions {
  /**
   * Called when a storage failure stalls writes, with the error and the
   * writes that have just become stalled (each write is reported once; the
   * writes are retried until they land).
   */
  onStall?: (error: unknown, writes: KvWrite[]) => void;
  /** Called when commits succeed again after a stall. */
  onRecover?: () => void;
  /**
   * A harmless write retried while commits fail and nothing else is queued,
   * so recovery is noticed even when every write that failed was refused
   * rather than held. Without it the committer stops counting itself
   * stalled once it holds nothing.
   */
  probe?: KvWrite;
}

/**
 * Whether a commit error comes from the storage (so retrying can succeed
 * once the condition clears) rather than from the writes themselves.
 *
 * @param err what `commit()` threw
 * @returns true for a full disk, an I/O error or a busy database
 */
export function isStorageFailure(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /disk is full|no space left|os error 28|disk i\/o error|database (table )?is locked|database is busy|out of memory/i
    .test(message);
}

/** Rough bytes a write adds to an atomic operation (UTF-16 worst case for text). */
function writeBytes(w: KvWrite): number {
  const v = w.value;
  const valueBytes = typeof v === "string"
    ? v.length * 2
    : v === undefined
    ? 0
    : JSON.stringify(v).length * 2;
  return valueBytes + 64 * w.key.length;
}

/**
 * Batches writes into atomic commits, one batch in flight at a time, so
 * commits (and what waits on them) complete in the order they were queued.
 */
export class GroupCommitter {
  #kv: Deno.Kv;
  #options: GroupCommitterOptions;
  #queue: Pending[] = [];
  #running = false;
  #idle: Waiter[] = [];
  #closing = false;
  #stall: unknown = undefined;
  #stalled = false;
  #stalledSince = 0;
  #wake: (() => void) | undefined;
  /** Commits made so far (for benchmarks and tests). */
  commits = 0;
  /** Commits that failed for a storage reason and were retried. */
  failures = 0;

  /**
   * Creates a committer for one database.
   *
   * @param kv the database to commit to
   * @param options stall and recovery callbacks
   */
  constructor(kv: Deno.Kv, options: GroupCommitterOptions = {}) {
    this.#kv = kv;
    this.#options = options;
  }

  /**
   * The storage error that currently holds writes back, if commits are failing.
   *
   * @returns the error, or undefined when commits succeed
   */
  get stalled(): unknown {
    return this.#stalled ? this.#stall : undefined;
  }

  /**
   * When commits started failing (epoch ms).
   *
   * @returns the time of the first failure of the current stall, or undefined
   */
  get stalledSince(): number | undefined {
    return this.#stalled ? this.#stalledSince : undefined;
  }

  /**
   * Queues writes to be committed together with whatever else is queued.
   *
   * @param writes the writes; all of them land in the same atomic commit
   * @param options `failFast`: reject with the storage error, the writes
   *   dropped, instead of holding them while commits are failing
   * @returns resolves once they are durable (a storage failure delays it,
   *   retrying, unless `failFast`), rejects if KV refuses the writes
   *   themselves or the committer is closed while they cannot be committed
   */
  write(writes: KvWrite[], options: { failFast?: boolean } = {}): Promise<void> {
    const failFast = options.failFast ?? false;
    if (failFast && this.#stalled) return Promise.reject(this.#stall);
    return new Promise((resolve, reject) => {
      const bytes = writes.reduce((n, w) => n + writeBytes(w), 0);
      this.#queue.push({ writes, bytes, resolve, reject, solo: false, reported: false, failFast });
      if (!this.#running) {
        this.#running = true;
        queueMicrotask(() => this.#drain());
      }
    });
  }

  /**
   * Waits until everything queued so far is committed.
   *
   * @param options `failFast`: reject with the storage error instead of
   *   waiting while commits are failing
   * @returns resolves when the queue is empty
   */
  flush(options: { failFast?: boolean } = {}): Promise<void> {
    const failFast = options.failFast ?? false;
    if (failFast && this.#stalled) return Promise.reject(this.#stall);
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve, reject) => this.#idle.push({ resolve, reject, failFast }));
  }

  /**
   * Stops retrying: queued writes get one more attempt, and if that fails
   * they are rejected with its error. Resolves once the queue is empty.
   *
   * @returns resolves when nothing is queued any more
   */
  close(): Promise<void> {
    this.#closing = true;
    this.#wake?.();
    return this.flush();
  }

  async #drain(): Promise<void> {
    let backoff = RETRY_MIN_MS;
    while (this.#queue.length > 0 || this.#probing()) {
      const batch = this.#queue.length > 0 ? this.#take() : [this.#probe()];
      try {
        await this.#commit(batch);
      } catch (err) {
        if (!isStorageFailure(err)) {
          // KV refused these writes themselves. Find the culprit alone so
          // the writes it was batched with still land, in order.
          if (batch.length > 1) {
            for (const p of batch) p.solo = true;
            this.#queue.unshift(...batch);
          } else batch[0].reject(err);
          continue;
        }
        this.failures++;
        this.#queue.unshift(...batch);
        if (this.#closing) {
          for (const p of this.#queue.splice(0)) p.reject(err);
          break;
        }
        if (!this.#stalled) this.#stalledSince = Date.now();
        this.#stalled = true;
        this.#stall = err;
        this.#reportStall(err);
        await this.#sleep(backoff);
        backoff = Math.min(backoff * 2, RETRY_MAX_MS);
        continue;
      }
      this.commits++;
      backoff = RETRY_MIN_MS;
      for (const p of batch) p.resolve();
      if (this.#stalled) {
        this.#stalled = false;
        this.#stall = undefined;
        this.#callback(() => this.#options.onRecover?.());
      }
    }
    // Nothing is held and nothing probes: the next write finds out whether storage works.
    this.#stalled = false;
    this.#stall = undefined;
    this.#running = false;
    const idle = this.#idle;
    this.#idle = [];
    for (const w of idle) w.resolve();
  }

  /** Whether to keep retrying a probe: commits are failing and nothing else is queued. */
  #probing(): boolean {
    return this.#stalled && !this.#closing && this.#options.probe !== undefined;
  }

  /** A pending probe write; only the committer cares how it ends. */
  #probe(): Pending {
    const writes = [this.#options.probe!];
    return {
      writes,
      bytes: writeBytes(writes[0]),
      resolve: () => {},
      reject: () => {},
      solo: false,
      reported: false,
      failFast: false,
    };
  }

  /** The next batch: queued writes up to the limits, or one `solo` write alone. */
  #take(): Pending[] {
    const batch: Pending[] = [];
    let mutations = 0;
    let bytes = 0;
    while (this.#queue.length > 0) {
      const next = this.#queue[0];
      const fits = !next.solo && mutations + next.writes.length <= MAX_MUTATIONS &&
        bytes + next.bytes <= MAX_BYTES;
      if (batch.length > 0 && (!fits || batch[0].solo)) break;
      batch.push(this.#queue.shift()!);
      mutations += next.writes.length;
      bytes += next.bytes;
    }
    return batch;
  }

  /** Refuses fail-fast writes and waiters; reports the writes a storage failure has newly stalled. */
  #reportStall(err: unknown): void {
    const refused = this.#queue.filter((p) => p.failFast);
    if (refused.length > 0) {
      this.#queue = this.#queue.filter((p) => !p.failFast);
      for (const p of refused) p.reject(err);
    }
    const fresh: KvWrite[] = [];
    for (const p of this.#queue) {
      if (p.reported) continue;
      p.reported = true;
      fresh.push(...p.writes);
    }
    if (fresh.length > 0) this.#callback(() => this.#options.onStall?.(err, fresh));
    const waiting = this.#idle;
    this.#idle = waiting.filter((w) => !w.failFast);
    for (const w of waiting) if (w.failFast) w.reject(err);
  }

  /** Runs a callback; whatever it throws must not stop the committer. */
  #callback(f: () => void): void {
    try {
      f();
    } catch {
      // A failing observer is not the committer's problem.
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        done();
      };
    });
  }

  async #commit(batch: Pending[]): Promise<void> {
    // A later write to the same key in one batch replaces the earlier one.
    const byKey = new Map<string, KvWrite>();
    for (const p of batch) {
      for (const w of p.writes) {
        const id = JSON.stringify(w.key);
        byKey.delete(id);
        byKey.set(id, w);
      }
    }
    const op = this.#kv.atomic();
    for (const w of byKey.values()) {
      if (w.value === undefined) op.delete(w.key);
      else op.set(w.key, w.value, w.expireIn ? { expireIn: w.expireIn } : undefined);
    }
    const res = await op.commit();
    if (!res.ok) throw new Error("KV commit was refused");
  }
}
