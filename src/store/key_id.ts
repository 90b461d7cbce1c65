/**
 * Identities of KV keys as strings, so the group committer can tell in a
 * map whether two writes of a batch touch the same key, or append to the
 * same log. Key parts are joined with separators that no plain part
 * contains; a key with any other part is identified by its JSON, marked so
 * that it cannot equal a joined identity.
 *
 * Write builders that know a key's shape extend a prefix's identity,
 * computed once, instead of identifying the whole key per write: the ids of
 * every event's writes cost one concatenation each.
 *
 * @module
 */

/** Comes before a string part (after the first). */
const STRING = "\u0000";
/** Comes before a number part. */
const NUMBER = "\u0001";
/** Starts the identity of a key with a part that cannot be joined. */
const OTHER = "\u0002";

/** Whether a string part may be joined: none of the separator characters in it. */
function plain(part: string): boolean {
  for (let i = 0; i < part.length; i++) if (part.charCodeAt(i) <= 2) return false;
  return true;
}

/**
 * The identity of a key.
 *
 * @param key the key
 * @returns a string equal for equal keys and different for different keys
 * @example
 * ```ts
 * import { keyId } from "./key_id.ts";
 * console.log(keyId(["v1", "job", "job_1"]) === keyId(["v1", "job", "job_1"])); // true
 * ```
 */
export function keyId(key: Deno.KvKey): string {
  return keyIdFrom("", key, 0) ?? OTHER + JSON.stringify(key, jsonPart);
}

/**
 * The identity of a key whose first `from` parts have the identity
 * `prefix` (from {@linkcode keyId} of those parts; "" when `from` is 0).
 *
 * @param prefix identity of `key.slice(0, from)`
 * @param key the whole key
 * @param from where the parts not in `prefix` start
 * @returns the identity, as {@linkcode keyId} gives it
 */
export function keyIdUnder(prefix: string, key: Deno.KvKey, from: number): string {
  return keyIdFrom(prefix, key, from) ?? keyId(key);
}

/** Joins parts onto a prefix's identity, or undefined when a part cannot be joined. */
function keyIdFrom(prefix: string, key: Deno.KvKey, from: number): string | undefined {
  let id = prefix;
  for (let i = from; i < key.length; i++) {
    const part = key[i];
    if (typeof part === "number") id += NUMBER + part;
    else if (typeof part === "string" && plain(part)) id += i === 0 ? part : STRING + part;
    else return undefined;
  }
  return id;
}

/** Key parts JSON cannot tell apart or write. */
function jsonPart(_k: string, v: unknown): unknown {
  if (typeof v === "bigint" || typeof v === "symbol") return `${typeof v}:${String(v)}`;
  if (v instanceof Uint8Array) return `bytes:${v.join(",")}`;
  if (typeof v === "number" && !Number.isFinite(v)) return `number:${v}`;
  return v;
}
