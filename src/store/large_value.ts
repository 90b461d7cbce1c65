/**
 * How texts are kept in KV, whose values hold at most 64 KiB.
 *
 * A text larger than one value is stored as a head entry `{parts: n}` at the
 * key and the text in `n` parts at `[...key, i]`, so a prefix listing
 * returns them in order right after the head.
 *
 * A log (a session's envelopes, a job's history) is a prefix whose entries
 * are `[...log, n]`. Entries appended in one group commit are stored
 * together: consecutive small entries of one log share one value, an array
 * of their texts kept at the key of the last of them, so a commit of many
 * events writes a few values rather than one per event. A reader listing
 * from `n` therefore finds the entry `n` in the first value at or after
 * `[...log, n]`.
 *
 * @module
 */
import { type DamageKind, StoreDamageError, unreadable } from "./damage.ts";
import { keyId } from "./key_id.ts";

/**
 * Characters per part. V8 stores a string with any non-Latin-1 character as
 * UTF-16, two bytes a character, so 30,000 characters stay under 64 KiB.
 */
export const PART_CHARS = 30_000;

/** Characters one shared log value holds at most (with its entries' overhead, under 64 KiB). */
export const SEGMENT_CHARS = PART_CHARS;

/** Entries one shared log value holds at most (a few bytes of overhead each). */
export const SEGMENT_ENTRIES = 256;

/**
 * The time to live (ms, about 1,000 years) of an entry the runtime keeps
 * until it deletes it itself. KV indexes every entry by its expiry
 * (`kv_expiration_ms_idx`) and files an entry without one (-1) under its
 * key, so a commit of keys under several prefixes dirtied an index page for
 * each prefix besides its table pages; entries that expire "now + this"
 * sit side by side at the end of that index, in one or two pages per
 * commit. KV deletes an entry only once its expiry has passed, and reads
 * ignore expiry, so this keeps what it kept.
 */
export const KEEP_MS = 31_557_600_000_000;

/**
 * The options KV sets a write with: its own time to live, else {@linkcode KEEP_MS}.
 *
 * @param w the write
 * @returns the options for `AtomicOperation.set`
 */
export function setOptions(w: { expireIn?: number }): { readonly expireIn: number } {
  return w.expireIn ? { expireIn: w.expireIn } : KEEP;
}

/** The options of every write without a time to live of its own: one object, not one per write. */
const KEEP: { readonly expireIn: number } = Object.freeze({ expireIn: KEEP_MS });

/** A write for the group committer. */
export interface KvWrite {
  /** The key. */
  key: Deno.KvKey;
  /** The value; omitted for a delete. */
  value?: unknown;
  /** Milliseconds until KV may drop the entry. */
  expireIn?: number;
  /** `keyId(key)` (`key_id.ts`), when the builder has it at hand; computed when left out. */
  id?: string;
  /**
   * Set on a small entry appended to a log (`key` is `[...log, n]`, `value`
   * a text of at most {@linkcode PART_CHARS}) to `keyId(log)`: the committer
   * may store it in one value with the entries around it.
   */
  append?: string;
}

/**
 * A write with every field of {@linkcode KvWrite} present, in one order
 * (absent ones undefined): the committer reads writes of every kind at the
 * same sites, which stay monomorphic only when they all have one shape.
 * Undefined fields mean what absent ones do; KV stores none of them.
 *
 * @param key the key
 * @param value the value; undefined for a delete
 * @param expireIn milliseconds until KV may drop the entry
 * @param id `keyId(key)`, when the builder has it at hand
 * @param append `keyId(log)` for a small entry appended to a log
 * @returns the write
 */
export function kvWrite(
  key: Deno.KvKey,
  value?: unknown,
  expireIn?: number,
  id?: string,
  append?: string,
): KvWrite {
  return { key, value, expireIn, id, append };
}

/** The head entry of a value stored in parts. */
interface PartsHead {
  parts: number;
}

/**
 * The writes that store `text` at `key`, split when it is large.
 *
 * @param key where to store it
 * @param text the text
 * @param expireIn optional time to live in ms
 * @returns one write for a small text, else the head and its parts
 */
export function textWrites(key: Deno.KvKey, text: string, expireIn?: number): KvWrite[] {
  if (text.length <= PART_CHARS) return [kvWrite(key, text, expireIn)];
  const writes: KvWrite[] = [];
  const n = Math.ceil(text.length / PART_CHARS);
  writes.push(kvWrite(key, { parts: n } satisfies PartsHead, expireIn));
  for (let i = 0; i < n; i++) {
    writes.push(kvWrite([...key, i], text.slice(i * PART_CHARS, (i + 1) * PART_CHARS), expireIn));
  }
  return writes;
}

/**
 * The writes that append entry `n` to a log. A small entry is marked as an
 * append, so the committer may store it with its neighbours; a large one is
 * stored in parts, alone.
 *
 * @param log the log's prefix
 * @param n the entry's position
 * @param text the entry
 * @param expireIn optional time to live in ms
 * @param logId `keyId(log)`, when the caller has it at hand
 * @returns the writes
 * @example
 * ```ts ignore
 * await committer.write(logWrites(["v1", "slog", "sess_1"], 7, envelopeText, ttlMs));
 * ```
 */
export function logWrites(
  log: Deno.KvKey,
  n: number,
  text: string,
  expireIn?: number,
  logId: string = keyId(log),
): KvWrite[] {
  if (text.length > PART_CHARS) return textWrites([...log, n], text, expireIn);
  return [kvWrite(entryKey(log, n), text, expireIn, undefined, logId)];
}

/**
 * `[...log, n]`, allocated at its exact size for the usual three-part log
 * prefix: a spread copies the prefix and then grows the copy for `n`, which
 * took ~200 bytes of the young generation per log entry, two entries per
 * agent event (its session's log and its job's history).
 */
function entryKey(log: Deno.KvKey, n: number): Deno.KvKey {
  return log.length === 3 ? [log[0], log[1], log[2], n] : [...log, n];
}

/**
 * The positions and texts one stored log value holds.
 *
 * @param n the last part of its key
 * @param value the value: a text, or the texts of entries up to `n`
 * @returns `[position, text]` pairs, in order; none for a parts head
 */
export function logEntries(n: number, value: unknown): Array<[number, string]> {
  if (typeof value === "string") return [[n, value]];
  if (!Array.isArray(value)) return [];
  const first = n - value.length + 1;
  return value.map((text, i) => [first + i, text as string]);
}

/**
 * Reassembles the entries of one log, read in key order, from values
 * written with {@linkcode textWrites} or {@linkcode logWrites}, and finds
 * what does not fit: a value that is neither a text, nor texts of entries
 * sharing it, nor `{parts}`; entries a shared value holds twice or before
 * the first position; a part missing or without its head; a head whose
 * parts never all arrive.
 *
 * @example
 * ```ts
 * import { TextAssembler, textWrites } from "./large_value.ts";
 * const problems: string[] = [];
 * const assembler = new TextAssembler("log", (e) => problems.push(e.message));
 * for (const w of textWrites(["log", 0], "x".repeat(70_000))) {
 *   for (const [n, text] of assembler.add(w.key.slice(1), w.value)) {
 *     console.log(n, text.length); // 0 70000
 *   }
 * }
 * assembler.end();
 * ```
 */
export class TextAssembler {
  #what: string;
  #problem: (error: StoreDamageError) => void;
  #pending: { n: number; parts: string[]; want: number } | undefined;
  /** Position of the last whole entry returned. */
  #last = -1;

  /**
   * Creates an assembler for one log.
   *
   * @param what the log, for messages (e.g. `session log of sess_…`)
   * @param problem told of each problem; reading goes on after it returns
   */
  constructor(what: string, problem: (error: StoreDamageError) => void) {
    this.#what = what;
    this.#problem = problem;
  }

  /**
   * One value of the log.
   *
   * @param tail its key after the log's prefix: `[n]` for an entry, the
   *   entries up to `n` sharing a value, or a head; `[n, i]` for a part
   * @param value its value
   * @returns the `[n, text]` entries it makes whole, in order (often none or one)
   */
  add(tail: Deno.KvKey, value: unknown): Array<[number, string]> {
    const [n, i] = tail;
    if (typeof n !== "number" || tail.length > 2 || (tail.length === 2 && typeof i !== "number")) {
      this.#fail("malformed", `an entry of ${this.#what} has an unexpected key`, { key: tail });
      return [];
    }
    if (tail.length === 1) {
      this.#unfinished();
      if (typeof value === "string") return this.#whole([[n, value]]);
      if (Array.isArray(value)) return this.#shared(n, value);
      const parts = (value as Partial<PartsHead> | null)?.parts;
      if (Number.isInteger(parts) && parts! > 0) {
        this.#pending = { n, parts: [], want: parts! };
      } else {
        this.#fail("malformed", `entry ${n} of ${this.#what} is neither a text nor a parts head`, {
          entry: n,
        });
      }
      return [];
    }
    const pending = this.#pending;
    if (!pending || pending.n !== n) {
      this.#unfinished();
      this.#fail("missing", `entry ${n} of ${this.#what} has parts but no head`, { entry: n });
      return [];
    }
    if (i !== pending.parts.length || typeof value !== "string") {
      this.#pending = undefined;
      this.#fail(
        typeof value === "string" ? "missing" : "malformed",
        `entry ${n} of ${this.#what}: part ${pending.parts.length} of ${pending.want} ${
          typeof value === "string" ? "is missing" : "is not a text"
        }`,
        { entry: n },
      );
      return [];
    }
    pending.parts.push(value);
    if (pending.parts.length < pending.want) return [];
    this.#pending = undefined;
    return this.#whole([[n, pending.parts.join("")]]);
  }

  /** The log has ended: a text still waiting for parts is a problem. */
  end(): void {
    this.#unfinished();
  }

  /** A value shared by the entries up to `n`: texts, one per entry, none before position 0. */
  #shared(n: number, value: unknown[]): Array<[number, string]> {
    const first = n - value.length + 1;
    if (value.length === 0 || first < 0 || !value.every((t) => typeof t === "string")) {
      this.#fail(
        "malformed",
        `entry ${n} of ${this.#what} is not the texts of the entries sharing its value`,
        { entry: n },
      );
      return [];
    }
    return this.#whole(logEntries(n, value));
  }

  /** Entries made whole; any at or before one already returned is stored twice. */
  #whole(entries: Array<[number, string]>): Array<[number, string]> {
    const [first] = entries[0];
    if (first <= this.#last) {
      this.#fail(
        "malformed",
        `entry ${
          entries.at(-1)![0]
        } of ${this.#what} holds entry ${first}, which an earlier value holds`,
        { entry: entries.at(-1)![0] },
      );
      entries = entries.filter(([n]) => n > this.#last);
      if (entries.length === 0) return [];
    }
    this.#last = entries.at(-1)![0];
    return entries;
  }

  #unfinished(): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = undefined;
    this.#fail(
      "missing",
      `entry ${pending.n} of ${this.#what} has ${pending.parts.length} of its ${pending.want} parts`,
      { entry: pending.n },
    );
  }

  #fail(kind: DamageKind, message: string, details: Record<string, unknown>): void {
    this.#problem(new StoreDamageError(kind, message, details));
  }
}

/**
 * Reads back texts written with {@linkcode textWrites} or
 * {@linkcode logWrites} under a prefix whose entries are `[...prefix, n]`,
 * in order. Damage ends the listing with a {@linkcode StoreDamageError}: a
 * read KV refuses, or values that do not reassemble (see
 * {@linkcode TextAssembler}); nothing is skipped silently.
 *
 * @param kv the database
 * @param prefix the log's prefix; entries are `[...prefix, n]`
 * @param after list entries with `n > after`
 * @param what the log, for messages
 * @returns `[n, text]` pairs, the entry's position and its whole text
 * @throws {StoreDamageError} at the first damage
 */
export async function* listTexts(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  after = -1,
  what = "log",
): AsyncGenerator<[number, string]> {
  for await (const page of listTextPages(kv, prefix, after, what)) yield* page;
}

/**
 * Characters one read of a log aims at. A log is read in windows of about
 * this much, never whole: a resume of a long log holds two windows at a
 * time (no more than the 1 MiB a session queues to its socket before it
 * pauses), not megabytes that outlive the replay and tip a full GC midway.
 * Not smaller: each KV read costs the reader's thread about 0.1 ms besides
 * its data, and the reader yields to the event loop whenever it waits for a
 * window, after which the socket takes frames one by one again; in 64 KiB
 * windows a 10,000-envelope resume (figure 7) cost the runtime's thread a
 * tenth to a quarter more CPU than in one read.
 */
export const READ_WINDOW_CHARS = 512 * 1024;

/**
 * Windows read ahead of the reader at most, so the next KV read runs while
 * the reader works through (sends) the one before it: reading a window
 * takes KV less time than sending it takes the reader.
 */
export const READ_AHEAD_WINDOWS = 1;

/** Values one window holds at most (a log of one-entry values: a window of many). */
const MAX_WINDOW_VALUES = 500;

/** How to size a listing's reads (tests shrink them to cross many windows). */
export interface ReadWindows {
  /** Characters a read aims at (default {@linkcode READ_WINDOW_CHARS}). */
  chars?: number;
  /** Windows read ahead at most (default {@linkcode READ_AHEAD_WINDOWS}). */
  ahead?: number;
}

/** Characters a stored log value holds: a text, texts sharing it, or a parts head (none). */
function valueChars(value: unknown): number {
  if (typeof value === "string") return value.length;
  if (!Array.isArray(value)) return 0;
  let n = 0;
  for (const text of value) n += typeof text === "string" ? text.length : 0;
  return n;
}

/**
 * The entries of a listing in windows of about `chars` characters, read in
 * order with up to `ahead` windows read before the caller asks for them.
 * Each read continues from the cursor of the one before, so reads are one
 * at a time and a window's size (in values) follows the values' size.
 */
async function* readWindows(
  kv: Deno.Kv,
  selector: Deno.KvListSelector,
  { chars = READ_WINDOW_CHARS, ahead = READ_AHEAD_WINDOWS }: ReadWindows,
): AsyncGenerator<Array<Deno.KvEntry<unknown>>> {
  let cursor: string | undefined;
  // The first read guesses values near their largest (a commit's worth of entries).
  let limit = Math.max(1, Math.min(MAX_WINDOW_VALUES, Math.ceil(chars / SEGMENT_CHARS)));
  let ended = false;
  const read = async (): Promise<Array<Deno.KvEntry<unknown>>> => {
    if (ended) return [];
    const listing = kv.list<unknown>(selector, { limit, batchSize: limit, cursor });
    const window: Array<Deno.KvEntry<unknown>> = [];
    let windowChars = 0;
    for await (const entry of listing) {
      window.push(entry);
      windowChars += valueChars(entry.value);
    }
    if (window.length < limit) ended = true;
    else cursor = listing.cursor;
    const perValue = Math.max(1, windowChars / window.length);
    limit = Math.max(1, Math.min(MAX_WINDOW_VALUES, Math.floor(chars / perValue)));
    return window;
  };
  // Reads chain (each needs its predecessor's cursor); `queued` are read or being read.
  const queued: Array<Promise<Array<Deno.KvEntry<unknown>>>> = [];
  let tail: Promise<unknown> = Promise.resolve();
  const fill = () => {
    while (!ended && queued.length < ahead) {
      const next = tail.then(read);
      // A caller that stops early leaves reads behind: their failure is nobody's.
      next.catch(() => {});
      queued.push(next);
      tail = next;
    }
  };
  fill();
  while (queued.length > 0) {
    const window = await queued.shift()!;
    fill();
    if (window.length > 0) yield window;
  }
}

/**
 * {@linkcode listTexts} a stored value at a time: each page holds the
 * entries one value made whole (the entries of one group commit, up to
 * {@linkcode SEGMENT_ENTRIES}), so a reader of a long log, a resume replay
 * above all, awaits once per value rather than once per entry. KV is read
 * in windows of about {@linkcode READ_WINDOW_CHARS}, up to
 * {@linkcode READ_AHEAD_WINDOWS} of them ahead of the caller: memory stays
 * bounded however long the log, and the next read overlaps the caller's
 * work on the pages before it.
 *
 * @param kv the database
 * @param prefix the log's prefix; entries are `[...prefix, n]`
 * @param after list entries with `n > after`
 * @param what the log, for messages
 * @param windows read sizes other than the defaults
 * @returns pages of `[n, text]` pairs, in order, none empty
 * @throws {StoreDamageError} at the first damage
 * @example
 * ```ts ignore
 * for await (const page of listTextPages(kv, ["v1", "slog", sessionId], lastSeen)) {
 *   for (const [seq, text] of page) socket.send(text);
 * }
 * ```
 */
export async function* listTextPages(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  after = -1,
  what = "log",
  windows: ReadWindows = {},
): AsyncGenerator<Array<[number, string]>> {
  // A value holding several entries sits at the key of its last one, so the
  // entry after `after` is in the first value at or past it.
  const selector = { prefix, start: [...prefix, after + 1] };
  const assembler = new TextAssembler(what, (error) => {
    throw error;
  });
  const reads = readWindows(kv, selector, windows);
  let last = after;
  while (true) {
    let next: IteratorResult<Array<Deno.KvEntry<unknown>>>;
    try {
      next = await reads.next();
    } catch (err) {
      throw unreadable(`${what} after entry ${last}`, err, { after: last });
    }
    if (next.done) break;
    for (const entry of next.value) {
      let page = assembler.add(entry.key.slice(prefix.length), entry.value);
      // Only the first value can hold entries at or before `after`.
      if (page.length > 0 && page[0][0] <= after) page = page.filter(([n]) => n > after);
      if (page.length === 0) continue;
      last = page[page.length - 1][0];
      yield page;
    }
  }
  assembler.end();
}
