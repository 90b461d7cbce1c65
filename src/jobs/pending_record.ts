/**
 * The record of a job started before its record is committed (an early
 * start), from its submit until its `job.accepted` is sent.
 *
 * The record commits before anything about the job is sent: its writes are
 * queued ahead of every envelope of the job (at once, when the hold is over,
 * or in front of the job's first envelope, in the same commit), `job.accepted`
 * is sent once that commit is done, and the job's envelopes are delivered
 * only after {@linkcode PendingRecord.accepted}, which settles right after
 * the `job.accepted` went out. Should the commit fail, `accepted` rejects:
 * nothing of the job is sent, and the submit is refused.
 *
 * @module
 */
import type { ArcpError } from "../protocol/errors.ts";
import type { KvWrite } from "../store/large_value.ts";

/** A job record on its way to its commit. */
export class PendingRecord {
  #build: () => KvWrite[];
  #write: (writes: KvWrite[]) => Promise<void>;
  #writes: KvWrite[] | undefined;
  #taken = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #commit!: { resolve: () => void; reject: (err: unknown) => void };
  #accept!: { resolve: () => void; reject: (err: unknown) => void };
  /** Resolves once the record is durable; rejects when its commit failed. */
  readonly committed: Promise<void>;
  /**
   * Resolves right after `job.accepted` was handed to the session; rejects
   * when the record's commit failed. The job's envelopes wait for it.
   */
  readonly accepted: Promise<void>;

  /**
   * @param build the writes of the record (and what rides with it), built when they are queued
   * @param write queues writes for a commit, refused at once while storage fails
   */
  constructor(build: () => KvWrite[], write: (writes: KvWrite[]) => Promise<void>) {
    this.#build = build;
    this.#write = write;
    this.committed = new Promise((resolve, reject) => this.#commit = { resolve, reject });
    this.accepted = new Promise((resolve, reject) => this.#accept = { resolve, reject });
    // Whoever waits on them handles a failure; an unwatched one must not end the process.
    this.committed.catch(() => {});
    this.accepted.catch(() => {});
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
    const writes = this.take();
    if (writes) this.carriedBy(this.#write(writes));
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
   * envelopes; the caller then calls {@linkcode carriedBy} with that commit.
   *
   * @returns the writes, or undefined when the record is queued already
   */
  take(): KvWrite[] | undefined {
    if (this.#taken) return undefined;
    this.#taken = true;
    clearTimeout(this.#timer);
    this.prepare();
    return this.#writes;
  }

  /**
   * Tells the record which commit carries it.
   *
   * @param write the commit's promise
   */
  carriedBy(write: Promise<void>): void {
    write.then(this.#commit.resolve, this.#commit.reject);
  }

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
   * Sends `job.accepted` once the record is durable, and then lets the
   * job's envelopes through.
   *
   * @param send sends `job.accepted`
   * @returns resolves once sent; rejects with the commit's error, nothing sent
   */
  async announce(send: () => void): Promise<void> {
    try {
      await this.committed;
    } catch (err) {
      this.#accept.reject(err);
      throw err;
    }
    try {
      send();
    } finally {
      this.#accept.resolve();
    }
  }
}
