/**
 * Group commit: writes queued while a commit is in flight share the next
 * atomic KV commit, so the durability rule (committed before sent) costs
 * one commit per batch rather than one per event.
 *
 * The batch size adapts to the load: an idle committer commits a write at
 * once, alone; under load each batch takes everything queued meanwhile, up
 * to what one atomic operation may hold (mutations and bytes). Those limits
 * are measured on what is actually committed: a later write to a key the
 * batch already holds replaces the earlier one (a session or job record
 * rewritten by every event counts once), and log entries appended
 * back to back share one value (see `large_value.ts`), so a batch of a few
 * hundred events is a few mutations. An object value counts as the most KV
 * lets a value take until the batch comes near its limit, and by its
 * measured size from then on, so a small batch measures nothing. Batches
 * never reorder writes: they are
 * cut from the head of the queue, committed one at a time, and settle in
 * queue order.
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
import { keyId } from "./key_id.ts";
import { whileBusy } from "./busy.ts";
import { type KvWrite, SEGMENT_CHARS, SEGMENT_ENTRIES, setOptions } from "./large_value.ts";
import { nextTurn, sliceSpent } from "../turn_slice.ts";

/** Stay well inside KV's 1000 mutations and ~800 KiB per atomic operation. */
const MAX_MUTATIONS = 900;
const MAX_BYTES = 600_000;

/** Retry backoff after a storage failure: first wait, and the cap (ms). */
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2000;

/**
 * Writes settled between looks at the turn's budget. Settling a batch runs
 * whatever waits on its writes (sending envelopes, starting jobs): for a
 * batch of hundreds of jobs that is a long stretch on the event loop, so
 * once the turn's budget ({@linkcode sliceSpent}) is spent the committer
 * yields to timers and I/O (a ping, a health check) before settling the
 * rest. A waiter can cost a millisecond (a job start), hence a small chunk.
 */
const SETTLE_CHUNK = 4;
/**
 * Queued writes taken into a batch, and mutations put on its atomic
 * operation (each serialized there), between looks at the turn's budget: a
 * full batch is hundreds of each, a long stretch of its own.
 */
const TAKE_CHUNK = 32;
const FILL_CHUNK = 64;

/** Queue entries consumed before the queue array is compacted. */
const COMPACT_AFTER = 1024;

/**
 * What a queue slot holds once its write is taken into a batch. The batch
 * holds the write from then on: were the slot to keep it until the next
 * compaction, every write of up to {@linkcode COMPACT_AFTER} batches (a
 * job's burst of events each, their envelopes' text and keys) would stay
 * alive after its commit settled, long enough for V8 to copy it out of the
 * young generation and promote it.
 */
const TAKEN: Pending = {
  writes: [],
  resolve: () => {},
  reject: () => {},
  solo: false,
  reported: true,
  failFast: false,
};

interface Pending {
  writes: KvWrite[];
  resolve: () => void;
  reject: (err: unknown) => void;
  /** Commit this one alone (set after a batch it was in was refused). */
  solo: boolean;
  /** Already reported through `onStall`. */
  reported: boolean;
  /** Refused, not held, when a storage failure stops it. */
  failFast: boolean;
  /** Called once the writes are durable, before anything waiting on them runs. */
  onDurable?: () => void;
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
  /** Called after each successful commit with how long KV took to make it durable (seconds). */
  onCommit?: (seconds: number) => void;
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

/** Rough bytes a key adds to an atomic operation. */
function keyBytes(key: Deno.KvKey): number {
  return 64 * key.length;
}

/** Rough bytes a value adds to an atomic operation (UTF-16 worst case for text). */
function valueBytes(v: unknown): number {
  return typeof v === "string" ? v.length * 2 : v === undefined ? 0 : serializedBound(v, 0);
}

/** Nesting past which a value is measured by its JSON instead (a cycle then throws, as it did). */
const WALK_DEPTH = 64;

/**
 * An upper bound of a value's bytes as KV stores it (V8's serialization):
 * a text at two bytes a character plus its tag and length, any other
 * primitive at the 16 bytes none exceeds, an object or array at its fields
 * plus 16. A walk rather than `JSON.stringify`: under load every object of
 * a batch is measured, and building its JSON only to count it was a few
 * per cent of the runtime's CPU per job.
 */
function serializedBound(v: unknown, depth: number): number {
  if (typeof v === "string") return 2 * v.length + 8;
  if (typeof v !== "object" || v === null) return 16;
  if (depth > WALK_DEPTH) return 2 * JSON.stringify(v).length + 16;
  if (ArrayBuffer.isView(v)) return v.byteLength + 32;
  let n = 16;
  if (Array.isArray(v)) {
    for (const item of v) n += serializedBound(item, depth + 1);
    return n;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) {
    // A Map, a Set, a Date…: V8 writes what `for…in` does not list.
    return 2 * (JSON.stringify(v)?.length ?? 0) + 64 +
      (v instanceof Map || v instanceof Set ? serializedBound([...v], depth + 1) : 0);
  }
  const o = v as Record<string, unknown>;
  for (const k in o) n += 2 * k.length + 8 + serializedBound(o[k], depth + 1);
  return n;
}

/**
 * The most bytes KV lets one value take: what an object counts for until
 * the batch comes near its limit, so a small batch (a lone job's commit)
 * measures none of its objects.
 */
const VALUE_BOUND = 65_536;

/** Whether a value is measured at once rather than bounded: it costs next to nothing to. */
function cheapToMeasure(v: unknown): boolean {
  return v === undefined || v === null || typeof v !== "object";
}

/** Entries of one log stored as one value: positions `last - texts.length + 1 .. last`. */
interface Segment {
  /** The key of its last entry, where the value goes. */
  key: Deno.KvKey;
  /** Position of its last entry. */
  last: number;
  /** Characters in it. */
  chars: number;
  /** Time to live of every entry in it (ms). */
  expireIn: number | undefined;
  /** The texts of its entries, in order. */
  texts: string[];
}

/** Whether an appended entry may go into a segment: the next position, same expiry, room left. */
function joins(seg: Segment | undefined, w: KvWrite, text: string): seg is Segment {
  return seg !== undefined && seg.last + 1 === w.key[w.key.length - 1] &&
    seg.expireIn === w.expireIn && seg.texts.length < SEGMENT_ENTRIES &&
    seg.chars + text.length <= SEGMENT_CHARS;
}

/**
 * One atomic commit being put together: pending writes from the head of the
 * queue, coalesced into the mutations that will be committed.
 */
class Batch {
  /** The pending writes it holds, in queue order. */
  readonly pending: Pending[] = [];
  #mutations = 0;
  #bytes = 0;
  /** Plain writes by key identity; a later one replaces an earlier one. */
  #plain = new Map<string, KvWrite>();
  /** Every log segment, in creation order. */
  #segments: Segment[] = [];
  /** The newest segment of each log, by log identity: the one the next entry may join. */
  #open = new Map<string, Segment>();
  /** Per write of the pending being offered: its key's (or its log's) identity. */
  #ids: string[] = [];
  /** Per write of the pending being offered: its bytes, when it is a plain write new to the batch. */
  #sizes: number[] = [];
  /** Plain writes counted at {@linkcode VALUE_BOUND}, by key identity, until the batch is measured. */
  #bounded: string[] = [];
  /** Whether every value is counted by its size (the batch came near a limit). */
  #measured = false;

  /** Whether it is a lone write to be committed alone. */
  get solo(): boolean {
    return this.pending.length === 1 && this.pending[0].solo;
  }

  /**
   * Adds a pending write if the batch can take it; the first always goes in
   * (if it is too large alone, KV refuses it and it fails alone).
   *
   * @returns whether it was added
   */
  offer(p: Pending): boolean {
    const first = this.pending.length === 0;
    if (!first && (p.solo || this.solo)) return false;
    const writes = p.writes;
    let [mutations, bytes] = this.#cost(writes);
    if (this.#over(mutations, bytes) && !first && !this.#measured) {
      // Bounds no longer do: measure what the batch holds, and this write.
      this.#measure();
      [mutations, bytes] = this.#cost(writes);
    }
    if (!first && this.#over(mutations, bytes)) return false;
    this.#place(writes);
    this.pending.push(p);
    return true;
  }

  /** Whether adding this cost would take the batch past what one commit may hold. */
  #over(mutations: number, bytes: number): boolean {
    return this.#mutations + mutations > MAX_MUTATIONS || this.#bytes + bytes > MAX_BYTES;
  }

  /** Counts every bounded value of the batch by its size from now on. */
  #measure(): void {
    this.#measured = true;
    for (const id of this.#bounded) {
      const w = this.#plain.get(id)!;
      this.#bytes += valueBytes(w.value) - VALUE_BOUND;
    }
    this.#bounded = [];
  }

  /**
   * An upper bound of what writes add to the batch, touching nothing: an
   * entry counts as joining a value only if it follows one already in the
   * batch. Works out each write's identity and, for a plain write new to
   * the batch, its bytes, for {@linkcode #place}.
   *
   * @returns mutations and bytes
   */
  #cost(writes: KvWrite[]): [number, number] {
    let mutations = 0;
    let bytes = 0;
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i];
      if (w.append !== undefined) {
        const log = w.append;
        this.#ids[i] = log;
        const text = w.value as string;
        bytes += text.length * 2;
        if (!joins(this.#open.get(log), w, text)) {
          mutations++;
          bytes += keyBytes(w.key);
        }
        continue;
      }
      const id = w.id ?? keyId(w.key);
      this.#ids[i] = id;
      // A replacement is taken to be the size of the write it replaces.
      if (this.#plain.has(id)) continue;
      const size = keyBytes(w.key) +
        (this.#measured || cheapToMeasure(w.value) ? valueBytes(w.value) : VALUE_BOUND);
      this.#sizes[i] = size;
      mutations++;
      bytes += size;
    }
    return [mutations, bytes];
  }

  /** Places writes whose identities and sizes `offer` has just worked out; counts them exactly. */
  #place(writes: KvWrite[]): void {
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i];
      const id = this.#ids[i];
      if (w.append !== undefined) {
        const text = w.value as string;
        const n = w.key[w.key.length - 1] as number;
        const seg = this.#open.get(id);
        this.#bytes += text.length * 2;
        if (seg && joins(seg, w, text)) {
          seg.texts.push(text);
          seg.key = w.key;
          seg.last = n;
          seg.chars += text.length;
          continue;
        }
        const fresh: Segment = {
          key: w.key,
          last: n,
          chars: text.length,
          expireIn: w.expireIn,
          texts: [text],
        };
        this.#open.set(id, fresh);
        this.#segments.push(fresh);
        this.#mutations++;
        this.#bytes += keyBytes(w.key);
        continue;
      }
      if (!this.#plain.has(id)) {
        this.#mutations++;
        this.#bytes += this.#sizes[i];
        if (!this.#measured && !cheapToMeasure(w.value)) this.#bounded.push(id);
      }
      this.#plain.set(id, w);
    }
  }

  /**
   * Puts the mutations to commit on an atomic operation, continuing in a
   * later turn whenever the turn's budget is spent (nothing else touches
   * the batch meanwhile: it is out of the queue).
   *
   * @param op the operation to fill
   * @returns undefined when every mutation went on it in this turn, else
   *   resolves once every mutation is on it
   */
  fill(op: Deno.AtomicOperation): Promise<void> | undefined {
    return this.#fillFrom(op, this.#segments.values(), this.#plain.values());
  }

  /** Fills `op` with what the iterators have left; in a later turn once the budget is spent. */
  #fillFrom(
    op: Deno.AtomicOperation,
    segments: Iterator<Segment>,
    plain: Iterator<KvWrite>,
  ): Promise<void> | undefined {
    let n = 0;
    for (let next = segments.next(); !next.done; next = segments.next()) {
      const seg = next.value;
      const value = seg.texts.length === 1 ? seg.texts[0] : seg.texts;
      op.set(seg.key, value, setOptions(seg));
      if (++n % FILL_CHUNK === 0 && sliceSpent()) {
        return nextTurn().then(() => this.#fillFrom(op, segments, plain));
      }
    }
    for (let next = plain.next(); !next.done; next = plain.next()) {
      const w = next.value;
      if (w.value === undefined) op.delete(w.key);
      else op.set(w.key, w.value, setOptions(w));
      if (++n % FILL_CHUNK === 0 && sliceSpent()) {
        return nextTurn().then(() => this.#fillFrom(op, segments, plain));
      }
    }
    return undefined;
  }
}

/**
 * Batches writes into atomic commits, one batch in flight at a time, so
 * commits (and what waits on them) complete in the order they were queued.
 */
export class GroupCommitter {
  #kv: Deno.Kv;
  #options: GroupCommitterOptions;
  /** Queued writes; those before `#head` are taken. */
  #queue: Pending[] = [];
  #head = 0;
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
   *   dropped, instead of holding them while commits are failing;
   *   `onDurable`: called as soon as they are durable, in queue order with
   *   the settling of every write, so before anything that waits on these
   *   writes or on any write queued after them runs (a job's `job.accepted`
   *   goes out there, ahead of the job's envelopes)
   * @returns resolves once they are durable (a storage failure delays it,
   *   retrying, unless `failFast`), rejects if KV refuses the writes
   *   themselves or the committer is closed while they cannot be committed
   */
  write(
    writes: KvWrite[],
    options: { failFast?: boolean; onDurable?: () => void } = {},
  ): Promise<void> {
    const failFast = options.failFast ?? false;
    if (failFast && this.#stalled) return Promise.reject(this.#stall);
    return new Promise((resolve, reject) => {
      this.#queue.push({
        writes,
        resolve,
        reject,
        solo: false,
        reported: false,
        failFast,
        onDurable: options.onDurable,
      });
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

  get #queued(): number {
    return this.#queue.length - this.#head;
  }

  /** Puts a batch back at the head of the queue, ahead of everything queued later. */
  #requeue(pending: Pending[]): void {
    this.#queue = [...pending, ...this.#queue.slice(this.#head)];
    this.#head = 0;
  }

  async #drain(): Promise<void> {
    let backoff = RETRY_MIN_MS;
    // The last committed batch's waiters, running while the next batch is
    // taken and committed: the event loop works while KV writes, instead of
    // each batch's commit and its waiters taking turns.
    let settling = Promise.resolve();
    for (;;) {
      while (this.#queued > 0 || this.#probing()) {
        // Taken, filled and handed to KV in this microtask when the turn's
        // budget allows: what the writers queued behind their writes (a
        // job's end accounting) then runs while KV commits, not before.
        let batch = this.#queued > 0 ? this.#take() : this.#probe();
        if (batch instanceof Promise) batch = await batch;
        try {
          await this.#commit(batch);
        } catch (err) {
          const pending = batch.pending;
          if (!isStorageFailure(err)) {
            // KV refused these writes themselves. Find the culprit alone so
            // the writes it was batched with still land, in order.
            if (pending.length > 1) {
              for (const p of pending) p.solo = true;
              this.#requeue(pending);
            } else {
              // After the waiters of the batches committed before it.
              await settling;
              pending[0].reject(err);
            }
            continue;
          }
          this.failures++;
          this.#requeue(pending);
          if (this.#closing) {
            await settling;
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
        // Batches settle in commit order: every waiter of the one before has run.
        await settling;
        settling = this.#settle(batch.pending);
        if (this.#stalled) {
          this.#stalled = false;
          this.#stall = undefined;
          this.#callback(() => this.#options.onRecover?.());
        }
      }
      await settling;
      // The last waiters may have queued more while the drain still ran.
      if (this.#queued === 0 && !this.#probing()) break;
    }
    this.#queue = [];
    this.#head = 0;
    // Nothing is held and nothing probes: the next write finds out whether storage works.
    this.#stalled = false;
    this.#stall = undefined;
    this.#running = false;
    const idle = this.#idle;
    this.#idle = [];
    for (const w of idle) w.resolve();
  }

  /**
   * Resolves committed writes in queue order, in slices: once the turn's
   * budget is spent the event loop serves timers and I/O before the rest,
   * so a big batch does not hold a ping or a health check for the whole
   * time its waiters take to run. Nothing is reordered (writes settle in
   * order, and a batch starts settling only once the one before has
   * settled) and nothing is settled before it is committed.
   */
  async #settle(pending: Pending[]): Promise<void> {
    for (let i = 0; i < pending.length; i++) {
      const { onDurable } = pending[i];
      if (onDurable) this.#callback(onDurable);
      pending[i].resolve();
      if ((i + 1) % SETTLE_CHUNK !== 0 || i + 1 === pending.length) continue;
      // Let the waiters just resolved run before looking at the clock.
      await Promise.resolve();
      if (sliceSpent()) await nextTurn();
    }
  }

  /** Whether to keep retrying a probe: commits are failing and nothing else is queued. */
  #probing(): boolean {
    return this.#stalled && !this.#closing && this.#options.probe !== undefined;
  }

  /** A batch of the probe write alone; only the committer cares how it ends. */
  #probe(): Batch {
    const batch = new Batch();
    batch.offer({
      writes: [this.#options.probe!],
      resolve: () => {},
      reject: () => {},
      solo: false,
      reported: false,
      failFast: false,
    });
    return batch;
  }

  /**
   * The next batch: queued writes from the head, as many as one commit
   * holds, taken over several turns when the turn's budget runs out (only
   * the drain takes from or puts back into the queue, and it waits for
   * this; writes queued meanwhile join the tail, in order).
   *
   * @returns the batch, or (when it took more than this turn) a promise of it
   */
  #take(): Batch | Promise<Batch> {
    return this.#takeInto(new Batch());
  }

  /** Takes queued writes into `batch`; continues in a later turn once the budget is spent. */
  #takeInto(batch: Batch): Batch | Promise<Batch> {
    let n = 0;
    while (this.#head < this.#queue.length && batch.offer(this.#queue[this.#head])) {
      this.#queue[this.#head++] = TAKEN;
      if (++n % TAKE_CHUNK === 0 && sliceSpent()) {
        return nextTurn().then(() => this.#takeInto(batch));
      }
    }
    if (this.#head >= COMPACT_AFTER) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return batch;
  }

  /** Refuses fail-fast writes and waiters; reports the writes a storage failure has newly stalled. */
  #reportStall(err: unknown): void {
    const queued = this.#queue.slice(this.#head);
    const refused = queued.filter((p) => p.failFast);
    if (refused.length > 0) {
      this.#queue = queued.filter((p) => !p.failFast);
      this.#head = 0;
      for (const p of refused) p.reject(err);
    }
    const fresh: KvWrite[] = [];
    for (let i = this.#head; i < this.#queue.length; i++) {
      const p = this.#queue[i];
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

  async #commit(batch: Batch): Promise<void> {
    let started = 0;
    const res = await whileBusy(() => {
      const op = this.#kv.atomic();
      const commit = () => {
        // What KV takes, not the turns the filling waited for.
        started = performance.now();
        return op.commit();
      };
      const filling = batch.fill(op);
      return filling === undefined ? commit() : filling.then(commit);
    });
    if (!res.ok) throw new Error("KV commit was refused");
    const seconds = (performance.now() - started) / 1000;
    this.#callback(() => this.#options.onCommit?.(seconds));
  }
}
