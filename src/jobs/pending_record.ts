/**
 * The record of a job started before its record is committed (an early
 * start), from its submit until its `job.accepted` is sent.
 *
 * The record commits before anything about the job is sent. Its writes are
 * queued ahead of every envelope of the job (at once, when the hold is over,
 * or in front of the job's first envelope, in the same commit), and
 * `job.accepted` is sent from the commit's `onDurable` hook: the group
 * committer runs it as that commit settles, before anything waiting on that
 * commit or a later one runs, so before the job's envelopes are delivered.
 * The envelopes need no gate of their own, and every session keeps getting
 * its envelopes in commit order (a gate that held one job's envelopes back
 * let later seqs of other jobs overtake them). Should the commit fail, the
 * submit is refused and nothing of the job is sent (see `Fanout`).
 *
 * @module
 */
import type { ArcpError } from "../protocol/errors.ts";
import type { KvWrite } from "../store/large_value.ts";

/**
 * Queues writes for a commit, refused at once while storage fails.
 *
 * @param writes the writes
 * @param onDurable called as the commit settles, before anything waiting on it runs
 * @returns resolves once durable
 */
export type RecordWrite = (writes: KvWrite[], onDurable: () => void) => Promise<void>;

/** The writes of a held record, built together (see {@linkcode PendingRecord.prepare}). */
export interface RecordWrites {
  /**
   * The writes of the record and its index entries, as the record was when
   * these were built; not built at all when a terminal record replaces them.
   */
  record: () => KvWrite[];
  /** What rides with it (the runtime log's entry). */
  rides: KvWrite[];
}

/** A job record on its way to its commit. */
export class PendingRecord {
  #build: () => RecordWrites;
  #write: RecordWrite;
  #writes: RecordWrites | undefined;
  #taken = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #durable = false;
  #send: (() => void) | undefined;
  #sent = false;
  #commit!: { resolve: () => void; reject: (err: unknown) => void };
  #accept!: { resolve: () => void; reject: (err: unknown) => void };
  /** Resolves once the record is durable; rejects when its commit failed. */
  readonly committed: Promise<void>;
  /** Resolves right after `job.accepted` was sent; rejects when the record's commit failed. */
  readonly accepted: Promise<void>;

  /**
   * @param build the writes of the record and of what rides with it, built when they are queued
   * @param write queues writes for a commit
   */
  constructor(build: () => RecordWrites, write: RecordWrite) {
    this.#build = build;
    this.#write = write;
    this.committed = new Promise((resolve, reject) => this.#commit = { resolve, reject });
    this.accepted = new Promise((resolve, reject) => this.#accept = { resolve, reject });
    // Whoever waits on them handles a failure; an unwatched one must not end the process.
    this.committed.catch(() => {});
    this.accepted.catch(() => {});
  }

  /** Whether the record is durable: its commit has settled. */
  get durable(): boolean {
    return this.#durable;
  }

  /**
   * Holds the record back for up to `ms`, waiting for the job's first
   * envelope to carry it; past that it is queued alone.
   *
   * @param ms the hold
   */
  hold(ms: number): void {
    this.#timer = setTimeout(() => this.queue(), ms);
  }

  /** Queues the record alone now, unless it is queued already. */
  queue(): void {
    const writes = this.take(false);
    if (writes) this.carriedBy(this.#write(writes, this.onDurable));
  }

  /**
   * Builds the record's writes now, if they are not yet built: whatever is
   * numbered in them (the runtime log's entry) is numbered before what the
   * caller numbers next, in the same commit.
   */
  prepare(): void {
    this.#writes ??= this.#build();
  }

  /**
   * Takes the record's writes to put in front of a commit of the job's
   * envelopes; the caller queues them with {@linkcode onDurable} as the
   * commit's hook and then calls {@linkcode carriedBy} with it.
   *
   * @param superseded the caller's commit writes the record and its index
   *   entries itself (the job's terminal record, whose first commit this is):
   *   only what rides with the record is taken
   * @returns the writes, or undefined when the record is queued already
   */
  take(superseded: boolean): KvWrite[] | undefined {
    if (this.#taken) return undefined;
    this.#taken = true;
    clearTimeout(this.#timer);
    this.prepare();
    const { record, rides } = this.#writes!;
    return superseded ? rides : [...record(), ...rides];
  }

  /**
   * Tells the record which commit carries it.
   *
   * @param write the commit's promise
   */
  carriedBy(write: Promise<void>): void {
    write.then(this.#commit.resolve, this.#commit.reject);
  }

  /** The hook of the commit carrying the record: it is durable, `job.accepted` goes now. */
  readonly onDurable = (): void => {
    this.#durable = true;
    this.#sendIfDue();
  };

  /**
   * Gives the record up when it is not queued yet: it never will be (the job
   * was stopped first), and the submit is refused with `error`.
   *
   * @param error why
   */
  drop(error: ArcpError): void {
    if (this.#taken) return;
    this.#taken = true;
    clearTimeout(this.#timer);
    this.#commit.reject(error);
  }

  /**
   * Sends `job.accepted` as soon as the record is durable. Call it before
   * the caller yields to I/O after the submit (no commit can settle before
   * then), so that it goes out as the record's commit settles.
   *
   * @param send sends `job.accepted`
   * @returns resolves once sent; rejects with the commit's error, nothing sent
   */
  async announce(send: () => void): Promise<void> {
    this.#send = send;
    this.#sendIfDue();
    try {
      await this.committed;
    } catch (err) {
      this.#accept.reject(err);
      throw err;
    }
  }

  #sendIfDue(): void {
    if (!this.#durable || !this.#send || this.#sent) return;
    this.#sent = true;
    try {
      this.#send();
    } finally {
      this.#accept.resolve();
    }
  }
}
