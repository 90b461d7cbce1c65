/**
 * Text values larger than one KV value (64 KiB) are stored as a head entry
 * `{parts: n}` at the key and the text in `n` parts at `[...key, i]`, so a
 * prefix listing returns them in order right after the head.
 *
 * @module
 */

/**
 * Characters per part. V8 stores a string with any non-Latin-1 character as
 * UTF-16, two bytes a character, so 30,000 characters stay under 64 KiB.
 */
export const PART_CHARS = 30_000;

/** A write for the group committer. */
export interface KvWrite {
  /** The key. */
  key: Deno.KvKey;
  /** The value; omitted for a delete. */
  value?: unknown;
  /** Milliseconds until KV may drop the entry. */
  expireIn?: number;
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
 * Reads back texts written with {@linkcode textWrites} under a prefix whose
 * entries are `[...prefix, n]`, in key order.
 *
 * @param kv the database
 * @param prefix the log's prefix; entries are `[...prefix, n]`
 * @param after list entries with `n > after`
 * @returns `[n, text]` pairs, the last key part and the whole text
 */
export async function* listTexts(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  after = -1,
): AsyncGenerator<[number, string]> {
  const depth = prefix.length + 1;
  const selector = { prefix, start: [...prefix, after + 1] };
  let pending: { n: number; parts: string[]; want: number } | undefined;
  for await (const entry of kv.list<unknown>(selector, { batchSize: 500 })) {
    if (entry.key.length === depth) {
      const n = entry.key[depth - 1] as number;
      if (typeof entry.value === "string") {
        yield [n, entry.value];
        pending = undefined;
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
