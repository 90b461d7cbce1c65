/**
 * The runtime's own event log: what happened to the runtime (it started, a
 * job was accepted or ended, a session opened or closed, a drain began or
 * finished), durable in KV and read from a cursor by the management API.
 *
 * Entries are numbered from 0 and appended through the group committer, so
 * an entry costs no commit of its own. An entry about a job rides in the
 * commit the job makes anyway ({@linkcode RuntimeLog.entry}): the record
 * of a job accepted, the terminal of a job ended. The log is bounded:
 * entries older than the retention period, and all but the newest
 * `maxEntries`, are deleted as new ones arrive.
 *
 * An entry is stored as its JSON text, appended to the log as the group
 * committer appends to a session's log (`large_value.ts`): entries that
 * commit together share one value, the texts of them all at the key of the
 * last (a job's `job.accepted` and `job.ended` when its record rides with
 * its terminal), so they cost one mutation and one text to serialize rather
 * than an object each. Entries written before that are objects, one a key,
 * and read as they were.
 *
 * @module
 */
import { nowIso } from "../protocol/time.ts";
import { keys } from "./keys.ts";
import { keyId } from "./key_id.ts";
import type { GroupCommitter } from "./group_commit.ts";
import { type KvWrite, kvWrite, logEntries } from "./large_value.ts";

/** Kinds of runtime events. */
export const RUNTIME_EVENT_KINDS = [
  "runtime.started",
  "job.accepted",
  "job.ended",
  "session.opened",
  "session.closed",
  "drain.started",
  "drain.finished",
  "sandbox.host_restarted",
] as const;

/** A kind of runtime event. */
export type RuntimeEventKind = typeof RUNTIME_EVENT_KINDS[number];

/** One entry of the runtime's event log. */
export interface RuntimeEvent {
  /** Position in the log, from 0. */
  index: number;
  /** When it happened, RFC 3339. */
  time: string;
  /** What happened. */
  kind: RuntimeEventKind;
  /** Ids and outcome; never a secret. */
  data: Record<string, unknown>;
}

/** Bounds of the log. */
export interface RuntimeLogOptions {
  /** How long an entry is kept (ms); `Infinity` keeps entries until `maxEntries` pushes them out. */
  retentionMs: number;
  /** Entries kept at most. */
  maxEntries: number;
}

/** Defaults of {@linkcode RuntimeLogOptions}: 30 days, 100,000 entries. */
export const DEFAULT_RUNTIME_LOG: RuntimeLogOptions = {
  retentionMs: 30 * 24 * 3600_000,
  maxEntries: 100_000,
};

/** Appends between two trims. */
const TRIM_EVERY = 256;

/** `keyId` of the log's prefix: how the committer tells its appended entries apart. */
const LOG_ID = keyId(keys.runtimeEvents());

/** The write that appends an entry. */
function entryWrite(entry: RuntimeEvent): KvWrite {
  return kvWrite(
    keys.runtimeEvent(entry.index),
    JSON.stringify(entry),
    undefined,
    undefined,
    LOG_ID,
  );
}

/**
 * The entries one stored value holds: an entry object (as written before
 * entries were texts), an entry's text, or the texts of the entries up to
 * `n` that share it. A value that is none of these, or a text that is not
 * an entry, holds nothing a reader can use and is skipped.
 *
 * @param n the last part of its key
 * @param value the value
 * @returns the entries, oldest first
 */
export function storedEvents(n: number, value: unknown): RuntimeEvent[] {
  if (typeof value !== "string" && !Array.isArray(value)) {
    return isEvent(value) ? [value] : [];
  }
  const events: RuntimeEvent[] = [];
  for (const [, text] of logEntries(n, value)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      continue;
    }
    if (isEvent(parsed)) events.push(parsed);
  }
  return events;
}

/** Whether a value has an entry's shape (its index and time, which reads and trims use). */
function isEvent(v: unknown): v is RuntimeEvent {
  const e = v as Partial<RuntimeEvent> | null;
  return typeof e === "object" && e !== null && typeof e.index === "number" &&
    typeof e.time === "string" && typeof e.kind === "string";
}

/** The runtime's event log. */
export class RuntimeLog {
  #kv: Deno.Kv;
  #committer: GroupCommitter;
  #options: RuntimeLogOptions;
  #next: number | undefined;
  #pending: Array<{ kind: RuntimeEventKind; data: Record<string, unknown>; time: string }> = [];
  #opening: Promise<void> | undefined;
  #sinceTrim = 0;
  /**
   * The oldest entry the last trim kept, when known: while it is not yet
   * due for deletion neither is any later one, so a trim needs no read.
   */
  #oldest: { index: number; timeMs: number } | undefined;
  #trimming: Promise<void> = Promise.resolve();
  /** Settles once every entry appended so far is durable (or its write failed). */
  #written: Promise<void> = Promise.resolve();

  /**
   * @param kv the database
   * @param committer the group committer appends go through
   * @param options retention and size bound
   */
  constructor(kv: Deno.Kv, committer: GroupCommitter, options: RuntimeLogOptions) {
    this.#kv = kv;
    this.#committer = committer;
    this.#options = options;
  }

  /**
   * Appends an entry. Never throws: the log is for operators, and a failed
   * write of it must not fail what it reports.
   *
   * @param kind what happened
   * @param data ids and outcome (never a secret)
   * @returns resolves once the entry is durable (or its write failed)
   */
  append(kind: RuntimeEventKind, data: Record<string, unknown>): Promise<void> {
    this.#pending.push({ kind, data, time: nowIso() });
    // The first append finds where the log ends; the ones meanwhile wait in order.
    this.#opening ??= this.#open();
    return this.#written = this.#opening.then(() => this.#flush());
  }

  /**
   * The write of an entry that rides in a commit the caller makes anyway,
   * numbered now: queue it before anything else runs (in the same
   * synchronous step), so entries commit in the order they are numbered.
   * Until the log knows where it ends (its first append) there is none, and
   * the entry is appended on its own instead. If the commit it rides in
   * fails, the entry is lost with what it reports; readers skip the gap.
   *
   * @example
   * ```ts ignore
   * const writes = [...jobWrites, ...store.runtimeLog.entry("job.accepted", { job_id })];
   * await store.write(writes);
   * ```
   *
   * @param kind what happened
   * @param data ids and outcome (never a secret)
   * @returns the write to commit with the caller's, or none when the entry was appended alone
   */
  entry(kind: RuntimeEventKind, data: Record<string, unknown>): KvWrite[] {
    if (this.#next === undefined || this.#pending.length > 0) {
      void this.append(kind, data);
      return [];
    }
    const index = this.#next++;
    this.#counted(1);
    return [entryWrite({ index, time: nowIso(), kind, data })];
  }

  /** Counts appended entries; every `TRIM_EVERY` of them a trim runs. */
  #counted(n: number): void {
    this.#sinceTrim += n;
    if (this.#sinceTrim >= TRIM_EVERY) {
      this.#sinceTrim = 0;
      this.#trimming = this.#trimming.then(() => this.trim()).then(() => {}, () => {});
    }
  }

  async #open(): Promise<void> {
    let next = 0;
    try {
      for await (
        const e of this.#kv.list({ prefix: keys.runtimeEvents() }, { reverse: true, limit: 1 })
      ) {
        next = (e.key.at(-1) as number) + 1;
      }
    } catch {
      // An unreadable log starts again at 0 entries past nothing; reads skip what they cannot read.
    }
    this.#next = next;
  }

  async #flush(): Promise<void> {
    const batch = this.#pending.splice(0);
    if (batch.length === 0) return;
    const writes = batch.map(({ kind, data, time }) =>
      entryWrite({ index: this.#next!++, time, kind, data })
    );
    this.#counted(batch.length);
    await this.#committer.write(writes, { failFast: true }).catch(() => {});
  }

  /**
   * Deletes entries past the retention period and all but the newest
   * `maxEntries`.
   *
   * @returns how many entries were deleted
   */
  async trim(): Promise<number> {
    const cutoff = Date.now() - this.#options.retentionMs;
    const keepFrom = (this.#next ?? 0) - this.#options.maxEntries;
    const oldest = this.#oldest;
    // Entries are numbered in time order: the log's head decides. Known and
    // kept, it needs no read (a list would decode a whole batch to see it).
    if (oldest && oldest.index >= keepFrom && oldest.timeMs >= cutoff) return 0;
    this.#oldest = undefined;
    let head: { index: number; timeMs: number } | undefined;
    let deleted = 0;
    let batch: KvWrite[] = [];
    let counted = 0;
    const flush = async () => {
      await this.#committer.write(batch, { failFast: true });
      deleted += counted;
      batch = [];
      counted = 0;
    };
    for await (const e of this.#kv.list({ prefix: keys.runtimeEvents() }, { batchSize: 500 })) {
      const n = e.key.at(-1);
      const held = typeof n === "number" ? storedEvents(n, e.value) : [];
      const kept = held.findIndex((ev) => {
        const timeMs = Date.parse(ev.time);
        if (ev.index < keepFrom || timeMs < cutoff) return false;
        head = { index: ev.index, timeMs };
        return true;
      });
      if (kept === 0) break;
      if (kept > 0) {
        // A value shared by entries on both sides of the cut keeps the newer ones.
        const texts = held.slice(kept).map((ev) => JSON.stringify(ev));
        batch.push({ key: e.key, value: texts.length === 1 ? texts[0] : texts });
        counted += kept;
        break;
      }
      batch.push({ key: e.key });
      counted += held.length;
      if (batch.length === 500) await flush();
    }
    if (batch.length > 0) await flush();
    // Known only once everything before it is deleted.
    this.#oldest = head;
    return deleted;
  }

  /**
   * Entries after a position, oldest first, every entry appended before
   * the call included.
   *
   * @param after list entries with `index > after` (-1 for the start)
   * @param limit at most this many
   * @returns the entries, and whether more follow
   */
  async read(after: number, limit: number): Promise<{ events: RuntimeEvent[]; hasMore: boolean }> {
    // A reader sees every entry appended before it asked: those appended
    // alone, and those riding in writes queued meanwhile (an empty write
    // settles once everything queued before it is durable).
    await this.#written;
    await this.#committer.write([], { failFast: true }).catch(() => {});
    const prefix = keys.runtimeEvents();
    const from = Math.floor(after) + 1;
    const events: RuntimeEvent[] = [];
    // The first value at or after `from` may hold entries before it (they share it).
    for await (
      const e of this.#kv.list(
        { prefix, start: [...prefix, from] },
        { batchSize: Math.min(limit + 1, 500) },
      )
    ) {
      const n = e.key.at(-1);
      if (typeof n !== "number") continue;
      for (const ev of storedEvents(n, e.value)) if (ev.index >= from) events.push(ev);
      if (events.length > limit) break;
    }
    const hasMore = events.length > limit;
    return { events: events.slice(0, limit), hasMore };
  }
}
