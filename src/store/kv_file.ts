/**
 * The KV file as SQLite sees it, read-only: the integrity check `start`
 * runs, and a walk of every entry that carries on past damage for `arcp
 * doctor`. Deno KV keeps its data in SQLite (table `kv`: encoded key,
 * serialized value, its encoding, expiry); opening the file through
 * `Deno.openKv` would write to it (migrations, expiry), so nothing here does.
 *
 * A read-only SQLite connection to a WAL database creates the empty `-wal`
 * and `-shm` companion files when they are missing, as any reader does; it
 * never writes a page of the database.
 *
 * @module
 */
import { DatabaseSync } from "sqlite";
import { deserialize } from "v8";
import { StoreDamageError } from "./damage.ts";

/** The part of `node:sqlite`'s prepared statement used here. */
interface Statement {
  all(...params: unknown[]): Record<string, unknown>[];
  get(...params: unknown[]): Record<string, unknown> | undefined;
}

/** The part of `node:sqlite`'s database used here. */
interface Database {
  prepare(sql: string): Statement;
  exec(sql: string): void;
  close(): void;
}

/**
 * Opens a SQLite file read-only.
 *
 * @param path the file
 * @returns the connection
 */
function openReadOnly(path: string): Database {
  return new DatabaseSync(path, { readOnly: true });
}

/** One entry of the store, decoded. */
export interface FileEntry {
  /** Its key. */
  key: Deno.KvKey;
  /** Its value, as `Deno.Kv` would return it. */
  value: unknown;
}

/** Damage a walk found, and where. */
export interface FileDamage {
  /** The key of the damaged entry, when it could be named. */
  key?: string;
  /** The last readable key before an unreadable stretch (absent: from the start). */
  after?: string;
  /** The first readable key after it (absent: to the end). */
  before?: string;
  /** What is wrong. */
  problem: string;
}

/** One step of a walk: an entry, or damage. */
export type WalkItem = { entry: FileEntry } | { damage: FileDamage };

/** Rows read per query of a walk. */
const BATCH = 256;

/** The line SQLite's checks put before the problems they found in the main database. */
const CORRUPT_HEADER = "*** in database main ***";

/**
 * Checks the KV file at start: that SQLite can open it and that its
 * b-trees are sound (`PRAGMA quick_check`, stopped at the first problem).
 * A file that does not exist yet, or is empty, is a new store.
 *
 * @param path the KV file
 * @returns resolves when the store is sound
 * @throws {StoreDamageError} naming the file and the first problem
 * @example
 * ```ts ignore
 * import { checkStoreFile } from "./kv_file.ts";
 * await checkStoreFile("./data/arcp.kv");
 * ```
 */
export async function checkStoreFile(path: string): Promise<void> {
  try {
    if ((await Deno.stat(path)).size === 0) return;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw new StoreDamageError("unreadable", `KV store ${path} cannot be read: ${messageOf(err)}`);
  }
  let db: Database | undefined;
  try {
    db = openReadOnly(path);
    const problems = quickCheck(db, 1);
    if (problems.length > 0) {
      throw new StoreDamageError("malformed", `KV store ${path} is damaged: ${problems[0]}`);
    }
  } catch (err) {
    if (err instanceof StoreDamageError) throw err;
    throw new StoreDamageError("unreadable", `KV store ${path} cannot be read: ${messageOf(err)}`);
  } finally {
    db?.close();
  }
}

/**
 * SQLite's problems with the file's structure, one line each.
 *
 * @param db the open file
 * @param max stop after this many
 * @param full run `integrity_check` (also compares indexes with tables) instead of `quick_check`
 * @returns the problems; empty when sound
 */
function quickCheck(db: Database, max: number, full = false): string[] {
  const rows = db.prepare(`PRAGMA ${full ? "integrity_check" : "quick_check"}(${max})`).all();
  const lines = rows.flatMap((row) => String(Object.values(row)[0]).split("\n"))
    .filter((line) => line !== CORRUPT_HEADER);
  return lines.length === 1 && lines[0] === "ok" ? [] : lines;
}

/**
 * A KV file opened read-only, for a walk of its entries in key order. The
 * walk reads one consistent snapshot, so a runtime writing to the store
 * meanwhile does not make it report damage that is not there.
 *
 * @example
 * ```ts ignore
 * import { KvFile } from "./kv_file.ts";
 * using file = KvFile.open("./data/arcp.kv");
 * for (const problem of file.integrity()) console.log(problem);
 * for (const item of file.walk()) if ("damage" in item) console.log(item.damage.problem);
 * ```
 */
export class KvFile implements Disposable {
  #db: Database;
  #now: number;
  #after: Statement;
  #first: Statement;

  private constructor(db: Database) {
    this.#db = db;
    // One read transaction for everything that follows: a single snapshot.
    db.exec("BEGIN");
    const columns = "k, v, v_encoding, expiration_ms";
    this.#first = db.prepare(`SELECT ${columns} FROM kv ORDER BY k LIMIT ?`);
    this.#after = db.prepare(`SELECT ${columns} FROM kv WHERE k > ? ORDER BY k LIMIT ?`);
    this.#now = Date.now();
  }

  /**
   * Opens a KV file read-only.
   *
   * @param path the KV file
   * @returns the open file
   * @throws {StoreDamageError} when SQLite cannot open it or it has no KV table
   */
  static open(path: string): KvFile {
    let db: Database | undefined;
    try {
      db = openReadOnly(path);
      return new KvFile(db);
    } catch (err) {
      db?.close();
      throw new StoreDamageError(
        "unreadable",
        `KV store ${path} cannot be read: ${messageOf(err)}`,
      );
    }
  }

  /**
   * SQLite's own full check of the file (`PRAGMA integrity_check`).
   *
   * @param max report at most this many problems
   * @returns its problems, one line each; empty when sound
   */
  integrity(max = 100): string[] {
    try {
      return quickCheck(this.#db, max, true);
    } catch (err) {
      // The full check gives up on some damage the quick one still describes.
      try {
        const problems = quickCheck(this.#db, max);
        return problems.length > 0 ? problems : [messageOf(err)];
      } catch {
        return [messageOf(err)];
      }
    }
  }

  /**
   * Every entry in key order, as `Deno.Kv` would list them (entries past
   * their expiry left out), with damage in place of what cannot be read:
   * an entry whose key or value does not decode, or a stretch of keys
   * SQLite cannot read, past which the walk carries on.
   *
   * @returns the walk
   */
  *walk(): Generator<WalkItem> {
    let after: Uint8Array | undefined;
    while (true) {
      let rows: Row[];
      try {
        rows = this.#rows(after, BATCH);
      } catch {
        // Find the exact entry that fails, one row at a time.
        const { good, failed } = this.#rowsUntilFailure(after);
        for (const row of good) yield* this.#decode(row);
        if (good.length > 0) after = good.at(-1)!.k;
        if (!failed) {
          if (good.length < BATCH) return;
          continue;
        }
        const resumed = yield* this.#skip(after);
        if (resumed === undefined) return;
        after = resumed;
        continue;
      }
      for (const row of rows) yield* this.#decode(row);
      if (rows.length < BATCH) return;
      after = rows.at(-1)!.k;
    }
  }

  /** Closes the file. */
  close(): void {
    try {
      this.#db.exec("ROLLBACK");
    } catch {
      // no transaction left to end
    }
    this.#db.close();
  }

  /** Closes the file. */
  [Symbol.dispose](): void {
    this.close();
  }

  #rows(after: Uint8Array | undefined, limit: number): Row[] {
    return (after ? this.#after.all(after, limit) : this.#first.all(limit)) as unknown as Row[];
  }

  /** Up to a batch of rows read one by one, and whether the read after the last failed. */
  #rowsUntilFailure(after: Uint8Array | undefined): { good: Row[]; failed: boolean } {
    const good: Row[] = [];
    try {
      for (let i = 0; i < BATCH; i++) {
        const [row] = this.#rows(after, 1);
        if (!row) break;
        good.push(row);
        after = row.k;
      }
    } catch {
      return { good, failed: true };
    }
    return { good, failed: false };
  }

  /**
   * Past the unreadable entry after `after`: finds the nearest key above it
   * from which reading works again and reports the stretch between as
   * damage. Probes go out from `after` at doubling distances in key order
   * until a read works, then bisect back to the edge, so the stretch is
   * about as small as the damage (a readable run between two damaged ones
   * narrower than the last probe step is counted in the stretch).
   *
   * @returns the key to carry on after (that entry is yielded), or undefined when nothing past
   *   the damage can be read
   */
  *#skip(after: Uint8Array | undefined): Generator<WalkItem, Uint8Array | undefined> {
    const from = after ?? new Uint8Array();
    // Finer than any key this runtime writes, so the edge is found to the entry.
    const width = Math.max(from.length, 64) + 8;
    const top = (1n << BigInt(8 * width)) - 1n;
    const lo = bytesToInt(from, width);
    // A probe works when the first entry above it can be read (or there is none).
    const probe = (at: bigint): { row?: Row } | undefined => {
      try {
        return { row: this.#rows(intToBytes(at, width), 1)[0] };
      } catch {
        return undefined;
      }
    };
    let failed = lo;
    let worked = top;
    let found = probe(top);
    for (let step = 1n; lo + step < top; step *= 2n) {
      const at = probe(lo + step);
      if (at) {
        worked = lo + step;
        found = at;
        break;
      }
      failed = lo + step;
    }
    while (worked - failed > 1n) {
      const mid = (failed + worked) / 2n;
      const at = probe(mid);
      if (at) [worked, found] = [mid, at];
      else failed = mid;
    }
    const row = found?.row;
    yield {
      damage: {
        after: after && keyText(after),
        before: row && keyText(row.k),
        problem: row
          ? "unreadable entries between these keys"
          : "unreadable entries from here to the end",
      },
    };
    if (!row) return undefined;
    yield* this.#decode(row);
    return row.k;
  }

  *#decode(row: Row): Generator<WalkItem> {
    let key: Deno.KvKey;
    try {
      key = decodeKey(row.k);
    } catch (err) {
      yield { damage: { key: keyText(row.k), problem: `undecodable key: ${messageOf(err)}` } };
      return;
    }
    const expires = Number(row.expiration_ms);
    if (expires >= 0 && expires <= this.#now) return;
    try {
      yield { entry: { key, value: decodeValue(row.v, Number(row.v_encoding)) } };
    } catch (err) {
      yield { damage: { key: formatKey(key), problem: `undecodable value: ${messageOf(err)}` } };
    }
  }
}

/** A row of the `kv` table. */
interface Row {
  k: Uint8Array;
  v: Uint8Array;
  v_encoding: number | bigint;
  expiration_ms: number | bigint;
}

/** Deno KV's value encodings. */
const V8 = 1;
const LE64 = 2;
const BYTES = 3;

/**
 * A stored value as `Deno.Kv` returns it.
 *
 * @param bytes the stored bytes
 * @param encoding Deno KV's encoding tag
 * @returns the value
 * @throws {Error} when the bytes do not decode
 */
function decodeValue(bytes: Uint8Array, encoding: number): unknown {
  switch (encoding) {
    case V8:
      return v8Texts(bytes) ?? deserialize(bytes);
    case LE64:
      if (bytes.byteLength !== 8) throw new Error(`a u64 of ${bytes.byteLength} bytes`);
      return new Deno.KvU64(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    case BYTES:
      return bytes;
    default:
      throw new Error(`unknown value encoding ${encoding}`);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const DOUBLE_BYTES = new Uint8Array(8);
const DOUBLE = new DataView(DOUBLE_BYTES.buffer);
const utf16 = new TextDecoder("utf-16le");

/**
 * A V8-serialized string, or array of strings (log entries sharing a value),
 * decoded without the general deserializer (most entries are log texts, and
 * `node:v8`'s deserializer is slow): a version header, then the string, or
 * a dense array of them with its end tag, filling the rest.
 *
 * @param bytes the serialized value
 * @returns the value, or undefined when it is not one such string or array
 */
function v8Texts(bytes: Uint8Array): string | string[] | undefined {
  if (bytes[0] !== 0xff) return undefined;
  let i = 2;
  while (bytes[i] === 0x00) i++;
  if (bytes[i] !== 0x41) {
    const one = v8String(bytes, i);
    return one && one[1] === bytes.length ? one[0] : undefined;
  }
  let count: number;
  [count, i] = varint(bytes, i + 1);
  const texts: string[] = [];
  for (let n = 0; n < count; n++) {
    const one = v8String(bytes, i);
    if (!one) return undefined;
    texts.push(one[0]);
    i = one[1];
  }
  // The end of a dense array: its tag, no other properties, its length again.
  if (bytes[i] !== 0x24) return undefined;
  const [properties, at] = varint(bytes, i + 1);
  const [length, end] = varint(bytes, at);
  return properties === 0 && length === count && end === bytes.length ? texts : undefined;
}

/**
 * A one-byte (Latin-1) or two-byte (UTF-16LE) string at `at`, after any padding.
 *
 * @returns the string and where it ends, or undefined when there is none
 */
function v8String(bytes: Uint8Array, at: number): [string, number] | undefined {
  let i = at;
  while (bytes[i] === 0x00) i++;
  const tag = bytes[i++];
  if (tag !== 0x22 && tag !== 0x63) return undefined;
  let length: number;
  [length, i] = varint(bytes, i);
  const end = i + length;
  if (end > bytes.length) return undefined;
  const body = bytes.subarray(i, end);
  if (tag === 0x63) return length % 2 === 0 ? [utf16.decode(body), end] : undefined;
  if (isAscii(body)) return [utf8.decode(body), end];
  let text = "";
  for (let j = 0; j < body.length; j += 8192) {
    text += String.fromCharCode(...body.subarray(j, j + 8192));
  }
  return [text, end];
}

/** An unsigned base-128 varint at `at`: its value and where it ends. */
function varint(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let i = at;
  for (let shift = 0; i < bytes.length; shift += 7) {
    const b = bytes[i++];
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
  }
  return [value, i];
}

function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] >= 0x80) return false;
  return true;
}

/**
 * Decodes a key from Deno KV's tuple encoding: byte strings and strings
 * (NUL escaped as `00 ff`, ended by `00`), doubles, booleans and integers
 * of up to eight bytes; the runtime writes nothing else.
 *
 * @param bytes the encoded key
 * @returns the key
 * @throws {Error} on an encoding this does not know or a truncated key
 */
export function decodeKey(bytes: Uint8Array): Deno.KvKey {
  const key: Deno.KvKeyPart[] = [];
  let i = 0;
  const take = (n: number) => {
    if (i + n > bytes.length) throw new Error("truncated key");
    const out = bytes.subarray(i, i + n);
    i += n;
    return out;
  };
  while (i < bytes.length) {
    const tag = bytes[i++];
    if (tag === 0x01 || tag === 0x02) {
      let end = i;
      let escaped = false;
      while (bytes[end] !== 0x00 || bytes[end + 1] === 0xff) {
        if (end >= bytes.length) throw new Error("unterminated string in key");
        if (bytes[end] === 0x00) escaped = true, end++;
        end++;
      }
      let raw = bytes.subarray(i, end);
      i = end + 1;
      if (escaped) raw = raw.filter((b, j) => !(b === 0xff && raw[j - 1] === 0x00));
      key.push(tag === 0x01 ? Uint8Array.from(raw) : utf8.decode(raw));
    } else if (tag === 0x21) {
      if (i + 8 > bytes.length) throw new Error("truncated key");
      // Order-preserving: a positive double has its sign bit set, a negative one every bit flipped.
      const positive = (bytes[i] & 0x80) !== 0;
      for (let j = 0; j < 8; j++) DOUBLE_BYTES[j] = positive ? bytes[i + j] : bytes[i + j] ^ 0xff;
      if (positive) DOUBLE_BYTES[0] ^= 0x80;
      key.push(DOUBLE.getFloat64(0));
      i += 8;
    } else if (tag === 0x26 || tag === 0x27) {
      key.push(tag === 0x27);
    } else if (tag === 0x1d) {
      let v = 0n;
      for (const b of take(bytes[i++])) v = (v << 8n) | BigInt(b);
      key.push(v);
    } else if (tag >= 0x0c && tag <= 0x1c) {
      const negative = tag < 0x14;
      const n = negative ? 0x14 - tag : tag - 0x14;
      let v = 0n;
      for (const b of take(n)) v = (v << 8n) | BigInt(negative ? b ^ 0xff : b);
      key.push(negative ? -v : v);
    } else {
      throw new Error(`unknown key part tag 0x${tag.toString(16)}`);
    }
  }
  return key;
}

/**
 * A key as doctor prints it: `["v1","slog","sess_…",42]`.
 *
 * @param key the key
 * @returns its text
 */
export function formatKey(key: Deno.KvKey): string {
  const part = (p: Deno.KvKeyPart) =>
    typeof p === "string"
      ? JSON.stringify(p)
      : typeof p === "bigint"
      ? `${p}n`
      : p instanceof Uint8Array
      ? `bytes(${[...p].map((b) => b.toString(16).padStart(2, "0")).join("")})`
      : String(p);
  return `[${key.map(part).join(",")}]`;
}

/** An encoded key as text: decoded when it can be, else its bytes in hex. */
function keyText(bytes: Uint8Array): string {
  try {
    return formatKey(decodeKey(bytes));
  } catch {
    return `raw(${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")})`;
  }
}

/** A key as a number of `width` bytes (zeros appended), so keys can be bisected. */
function bytesToInt(bytes: Uint8Array, width: number): bigint {
  let n = 0n;
  for (let i = 0; i < width; i++) n = (n << 8n) | BigInt(bytes[i] ?? 0);
  return n;
}

/** The inverse of {@linkcode bytesToInt}. */
function intToBytes(n: bigint, width: number): Uint8Array {
  const out = new Uint8Array(width);
  for (let i = width - 1; i >= 0; i--, n >>= 8n) out[i] = Number(n & 0xffn);
  return out;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
