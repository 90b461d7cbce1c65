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
  if (text.length <= PART_CHARS) return [{ key, value: text, expireIn }];
  const writes: KvWrite[] = [];
  const n = Math.ceil(text.length / PART_CHARS);
  writes.push({ key, value: { parts: n } satisfies PartsHead, expireIn });
  for (let i = 0; i < n; i++) {
    writes.push({
      key: [...key, i],
      value: text.slice(i * PART_CHARS, (i + 1) * PART_CHARS),
      expireIn,
    });
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
  return [{ key: [...log, n], value: text, expireIn, append: logId }];
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
 * Reads back texts written with {@linkcode textWrites} or
 * {@linkcode logWrites} under a prefix whose entries are `[...prefix, n]`,
 * in order.
 *
 * @param kv the database
 * @param prefix the log's prefix; entries are `[...prefix, n]`
 * @param after list entries with `n > after`
 * @returns `[n, text]` pairs, the entry's position and its whole text
 */
export async function* listTexts(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  after = -1,
): AsyncGenerator<[number, string]> {
  const depth = prefix.length + 1;
  // A value holding several entries sits at the key of its last one, so the
  // entry after `after` is in the first value at or past it.
  const selector = { prefix, start: [...prefix, after + 1] };
  let pending: { n: number; parts: string[]; want: number } | undefined;
  for await (const entry of kv.list<unknown>(selector, { batchSize: 500 })) {
    if (entry.key.length === depth) {
      const n = entry.key[depth - 1] as number;
      pending = undefined;
      if (typeof entry.value === "string" || Array.isArray(entry.value)) {
        for (const item of logEntries(n, entry.value)) if (item[0] > after) yield item;
      } else {
        pending = { n, parts: [], want: (entry.value as PartsHead).parts };
      }
    } else if (pending && entry.key.length === depth + 1) {
      pending.parts.push(entry.value as string);
      if (pending.parts.length === pending.want) {
        yield [pending.n, pending.parts.join("")];
        pending = undefined;
      }
    }
  }
}
