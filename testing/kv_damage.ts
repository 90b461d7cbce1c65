/**
 * Damage to a real KV file, for tests of what the runtime and `arcp doctor`
 * do with it: bytes overwritten on disk, or rows gone from SQLite. Use on a
 * store no process has open.
 *
 * @module
 */
import { DatabaseSync } from "sqlite";

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
 * Overwrites `length` bytes of the file with random ones, starting at the
 * start of the database page that holds `key` (its first copy in the file),
 * as a disk that lost a stretch there would.
 *
 * @param kvPath the KV file
 * @param key a key stored in it
 * @param length bytes to overwrite
 * @returns the offset overwritten from
 */
export async function overwritePageOf(
  kvPath: string,
  key: ReadonlyArray<string | number>,
  length = 64 * 1024,
): Promise<number> {
  const file = await Deno.readFile(kvPath);
  const at = indexOf(file, encodeKey(key));
  if (at < 0) throw new Error(`key ${JSON.stringify(key)} is not in ${kvPath}`);
  // The page size is a big-endian u16 at offset 16 of the header (1 means 65536).
  const raw = (file[16] << 8) | file[17];
  const pageSize = raw === 1 ? 65536 : raw;
  const from = Math.floor(at / pageSize) * pageSize;
  await overwrite(kvPath, from, length);
  return from;
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

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  const first = needle[0];
  for (let i = haystack.indexOf(first); i >= 0; i = haystack.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
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
