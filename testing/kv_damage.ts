/**
 * Damage to a real KV file, for tests of what the runtime and `arcp doctor`
 * do with it: bytes overwritten on disk, or rows gone from SQLite. Use on a
 * store no process has open.
 *
 * @module
 */
import { DatabaseSync } from "sqlite";
import { KvFile } from "../src/store/kv_file.ts";

/**
 * Encodes a key as Deno KV stores it (strings and numbers: all the runtime's
 * keys are made of).
 *
 * @param key the key
 * @returns its bytes in the `kv` table
 */
export function encodeKey(key: ReadonlyArray<string | number>): Uint8Array {
  const out: number[] = [];
  for (const part of key) {
    if (typeof part === "string") {
      out.push(0x02);
      for (const b of new TextEncoder().encode(part)) out.push(...(b === 0 ? [0, 0xff] : [b]));
      out.push(0x00);
    } else {
      const bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setFloat64(0, part);
      if (part >= 0) bytes[0] ^= 0x80;
      else for (let i = 0; i < 8; i++) bytes[i] ^= 0xff;
      out.push(0x21, ...bytes);
    }
  }
  return new Uint8Array(out);
}

/**
 * Overwrites `length` bytes of the file with random ones, as a disk that
 * lost a stretch there would: whole pages, among them the page holding an
 * entry of `log` at or after entry `from`. When no stretch that long is the
 * log's alone, the longest such stretch of half, a quarter… down to one page.
 *
 * By default (`alone`) the stretch holds that log's pages only: leaf pages
 * of the `kv` table whose every entry is the log's, and the overflow pages
 * of those entries. Another log's pages are left alone too: a write the
 * test does not aim at (a new session's record or log, filed beside them)
 * may have to read its neighbours' pages, and would then fail first.
 * Entries appended in one commit share a value spread over overflow pages
 * (`src/store/large_value.ts`), so a store has few b-tree pages among many
 * overflow ones, and a stretch taken blindly would often hold an interior
 * page of `kv` (every entry under it lost), the expiry index, or the
 * records beside the log: damage to the store at large, not to a log. With `alone: false` it starts at the first b-tree page holding
 * such an entry, whatever follows. With `to`, the pages of entries after
 * it are spared as well: a stretch "in the middle" keeps the log's tail,
 * which a resume reads before it replays. With `values`, the stretch holds
 * the overflow pages of the log's values only and starts at the first page
 * of a value's chain: no b-tree page of `kv` is damaged, so no write of
 * another key can run into it (a write that splits or merges a leaf reads
 * the leaves beside it, which may be the log's), while a read of that value
 * fails at the chain's first link.
 *
 * @param kvPath the KV file (no process may have it open)
 * @param log the log's prefix, e.g. `["v1", "slog", sessionId]`
 * @param from the first entry whose page the stretch may hold
 * @param options `length`: bytes to overwrite (64 KiB); `alone`: the log's pages only (true);
 *   `to`: the last entry whose page the stretch may hold (none); `values`: the overflow pages of
 *   the log's values only (false)
 * @returns the offset overwritten from
 * @throws {Error} when not even one such page is in the file
 */
export async function overwriteLog(
  kvPath: string,
  log: ReadonlyArray<string | number>,
  from: number,
  options: { length?: number; alone?: boolean; to?: number; values?: boolean } = {},
): Promise<number> {
  const { length = 64 * 1024, alone = true, to, values = false } = options;
  const file = await Deno.readFile(kvPath);
  // The page size is a big-endian u16 at offset 16 of the header (1 means 65536).
  const raw = (file[16] << 8) | file[17];
  const pageSize = raw === 1 ? 65536 : raw;
  const page = (n: number) => file.subarray((n - 1) * pageSize, n * pageSize);
  const pages = pagesOfKv(kvPath);
  const byPath = new Map([...pages].map(([n, p]) => [p.path, n]));
  const prefix = encodeKey(log);
  // Keys order as their encodings do, so "at or before entry `to`" is a byte comparison.
  const last = to === undefined ? undefined : encodeKey([...log, to]);
  const isLog = (key: Uint8Array) =>
    startsWith(key, prefix) && (last === undefined || compareBytes(key, last) <= 0);
  const logsOnly = (n: number) =>
    pages.get(n)?.type === "leaf" && cellKeys(page(n)).every((key) => isLog(key));
  // An overflow page's path is its cell's: the path of the page holding the cell, the
  // cell's index in hex, then `+` and the page's place in the chain from 0. A cell on an
  // interior page is read whole by every search passing it: its overflow is no log's alone.
  const ownerKey = (p: KvPage) => {
    const slash = p.path.lastIndexOf("/");
    const owner = byPath.get(p.path.slice(0, slash + 1));
    if (owner === undefined || pages.get(owner)?.type !== "leaf") return undefined;
    const cell = parseInt(p.path.slice(slash + 1, p.path.indexOf("+")), 16);
    return cellKeys(page(owner))[cell];
  };
  const ofLogs = (n: number) => {
    const p = pages.get(n);
    if (p?.type !== "overflow") return !values && logsOnly(n);
    const key = ownerKey(p);
    return key !== undefined && isLog(key);
  };
  const keys = logValues(kvPath, log).filter((v) =>
    v.last >= from && isLog(encodeKey([...log, v.last]))
  ).map((v) => encodeKey([...log, v.last]));
  const aimed = (key: Uint8Array | undefined) => keys.some((k) => key && equalBytes(key, k));
  // A b-tree page holding an aimed-at entry; the first overflow page of one's value.
  const holds = (n: number) =>
    (alone ? logsOnly(n) : pages.get(n)?.type !== "overflow") && cellKeys(page(n)).some(aimed);
  const firstLink = (n: number) => {
    const p = pages.get(n);
    return p?.type === "overflow" && p.path.endsWith("+000000") && aimed(ownerKey(p));
  };
  // Pages of other keys land among the log's as the file grows (how many depends on how
  // commits were batched), so a shorter stretch stands in when no full one is the log's alone.
  for (let bytes = length; bytes >= pageSize; bytes /= 2) {
    const span = Math.ceil(bytes / pageSize);
    for (const holder of [...pages.keys()].sort((a, b) => a - b)) {
      if (!(values ? firstLink(holder) : holds(holder))) continue;
      // From the page if the stretch after it is the log's alone, else from a page before it
      // (a value's chain is read from its first link, so a stretch of values starts there).
      const lowest = Math.max(values ? holder : holder - span + 1, 2);
      for (let start = holder; start >= lowest; start--) {
        let clean = true;
        for (let n = start; n < start + span && clean && alone; n++) clean = ofLogs(n);
        if (!clean) continue;
        const offset = (start - 1) * pageSize;
        await overwrite(kvPath, offset, bytes);
        return offset;
      }
    }
  }
  throw new Error(`no page of ${kvPath} holds ${JSON.stringify(log)} from ${from} alone`);
}

/** A page of the `kv` table, as SQLite's `dbstat` describes it. */
interface KvPage {
  type: "internal" | "leaf" | "overflow";
  /** Its place in the b-tree: `/000/003/` for a b-tree page, `/000/003/005+000001` for an overflow page. */
  path: string;
}

/** The pages of the `kv` table, by number from 1. */
function pagesOfKv(kvPath: string): Map<number, KvPage> {
  const db = new DatabaseSync(kvPath, { readOnly: true });
  try {
    const rows = db.prepare("SELECT pageno, pagetype, path FROM dbstat WHERE name = 'kv'")
      .all() as Array<{ pageno: number | bigint; pagetype: KvPage["type"]; path: string }>;
    return new Map(rows.map((r) => [Number(r.pageno), { type: r.pagetype, path: r.path }]));
  } finally {
    db.close();
  }
}

/**
 * The keys of the cells of a b-tree page of `kv` (a table WITHOUT ROWID, so
 * an index b-tree: a cell is a record whose first column is the key).
 *
 * @param page the page's bytes (never page 1, which starts with the file header)
 * @returns each cell's key, in cell order; none for a page that is no b-tree page
 */
function cellKeys(page: Uint8Array): Uint8Array[] {
  const type = page[0];
  if (type !== LEAF && type !== INTERIOR) return [];
  const header = type === LEAF ? 8 : 12;
  const cells = (page[3] << 8) | page[4];
  const keys: Uint8Array[] = [];
  for (let c = 0; c < cells; c++) {
    let at = (page[header + 2 * c] << 8) | page[header + 2 * c + 1];
    if (type === INTERIOR) at += 4; // the left child's page number
    [, at] = sqliteVarint(page, at); // the payload's size
    const [headerSize, types] = sqliteVarint(page, at);
    // The key is a blob: serial type 12 + 2 × its length.
    const [keyType] = sqliteVarint(page, types);
    const start = at + headerSize;
    keys.push(page.subarray(start, start + Math.max(0, (keyType - 12) / 2)));
  }
  return keys;
}

/** Index b-tree page types of SQLite: leaf and interior. */
const LEAF = 0x0a;
const INTERIOR = 0x02;

/** A SQLite varint (big-endian, 7 bits a byte, the ninth byte whole) at `at`: value and end. */
function sqliteVarint(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    const b = bytes[at + i];
    if (i === 8) return [value * 256 + b, at + 9];
    value = value * 128 + (b & 0x7f);
    if (b < 0x80) return [value, at + i + 1];
  }
  return [value, at + 9];
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return bytes.length >= prefix.length && prefix.every((b, i) => bytes[i] === b);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && startsWith(a, b);
}

/**
 * Overwrites `length` bytes of a file with random ones from `offset`.
 *
 * @param path the file
 * @param offset where to start
 * @param length how many bytes
 */
export async function overwrite(path: string, offset: number, length: number): Promise<void> {
  const junk = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(junk.subarray(i, i + 65536));
  using file = await Deno.open(path, { write: true });
  await file.seek(offset, Deno.SeekMode.Start);
  let written = 0;
  while (written < length) written += await file.write(junk.subarray(written));
}

/**
 * Deletes the entries with keys in `[from, to)` straight from SQLite, as a
 * store that silently lost rows would look.
 *
 * @param kvPath the KV file
 * @param from first key deleted
 * @param to first key kept
 * @returns how many rows went
 */
export function deleteRows(
  kvPath: string,
  from: ReadonlyArray<string | number>,
  to: ReadonlyArray<string | number>,
): number {
  const db = new DatabaseSync(kvPath);
  try {
    const result = db.prepare("DELETE FROM kv WHERE k >= ? AND k < ?")
      .run(encodeKey(from), encodeKey(to)) as { changes: number | bigint };
    return Number(result.changes);
  } finally {
    db.close();
  }
}

/**
 * SHA-256 of a file, to show it was not changed.
 *
 * @param path the file
 * @returns the digest in hex
 */
export async function fileDigest(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Replaces one entry's stored value with bytes that do not deserialize, as a
 * flipped run of bits inside a value would leave it (SQLite's structure
 * stays sound).
 *
 * @param kvPath the KV file
 * @param key the entry's key
 */
export function garbleValue(kvPath: string, key: ReadonlyArray<string | number>): void {
  const db = new DatabaseSync(kvPath);
  try {
    const result = db.prepare("UPDATE kv SET v = ? WHERE k = ?")
      .run(new Uint8Array([0xff, 0x0f, 0x6f, 0x99, 0x99]), encodeKey(key)) as {
        changes: number | bigint;
      };
    if (Number(result.changes) !== 1) throw new Error(`no entry ${JSON.stringify(key)}`);
  } finally {
    db.close();
  }
}

/** One value of a log: the entries it holds, `first` to `last` (its key's last part). */
export interface LogValue {
  /** The first entry it holds. */
  first: number;
  /** The last entry it holds, the last part of its key. */
  last: number;
}

/**
 * Where a log's entries are stored: entries appended in one commit share a
 * value at the key of the last of them (`src/store/large_value.ts`), so a
 * test that damages an entry damages the value holding it, and every entry
 * beside it there.
 *
 * @param kvPath the KV file, read without changing it
 * @param log the log's prefix, e.g. `["v1", "slog", sessionId]`
 * @returns its values, in key order (a large entry's parts are left out: its head stands for it)
 */
export function logValues(kvPath: string, log: ReadonlyArray<string | number>): LogValue[] {
  using file = KvFile.open(kvPath);
  const values: LogValue[] = [];
  for (const item of file.walk()) {
    if (!("entry" in item)) continue;
    const { key, value } = item.entry;
    if (key.length !== log.length + 1 || !log.every((part, i) => key[i] === part)) continue;
    const last = key.at(-1) as number;
    values.push({ first: last - (Array.isArray(value) ? value.length : 1) + 1, last });
  }
  return values;
}

/**
 * The value holding entry `n` of a log.
 *
 * @param values the log's values, from {@linkcode logValues}
 * @param n the entry
 * @returns the value
 * @throws {Error} when no value holds it
 */
export function valueHolding(values: LogValue[], n: number): LogValue {
  const value = values.find((v) => v.first <= n && n <= v.last);
  if (!value) throw new Error(`no value holds entry ${n}`);
  return value;
}
