/**
 * Identifier minting: envelope ids, session and job ids, trace ids and
 * resume tokens.
 *
 * @module
 */

export { timingSafeEqual } from "./timing_safe.ts";

/** Random bytes drawn from the CSPRNG in bulk: one call per 4 KiB instead of one per id. */
const pool = new Uint8Array(4096);
let poolAt = pool.length;

/** A uniform 10-bit number from the CSPRNG. */
function random10(): number {
  if (poolAt + 2 > pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  const n = ((pool[poolAt] << 8) | pool[poolAt + 1]) & 1023;
  poolAt += 2;
  return n;
}

/** Crockford's base 32, as ULIDs spell it. */
const BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** Every pair of base-32 digits, by the 10-bit number it spells. */
const PAIRS: readonly string[] = Array.from(
  { length: 1024 },
  (_, i) => BASE32[i >> 5] + BASE32[i & 31],
);

/** The millisecond of the last id, its 10 time digits, and its 80 random bits as 8 pairs of digits. */
let ulidMs = -1;
let ulidTime = "";
const ulidRandom = new Uint16Array(8);
/** The time digits and the digits of the first 7 random pairs, which change only on a carry. */
let ulidHead = "";

function encodeHead(): string {
  let s = "";
  for (let i = 0; i < 7; i++) s += PAIRS[ulidRandom[i]];
  return s;
}

/**
 * A fresh ULID, monotonic within this process: a new millisecond draws a
 * fresh random part; within one (or when the clock steps back) the random
 * part of the last id is incremented. Envelope ids are minted per event, so
 * the digits that did not change are reused rather than spelled again.
 *
 * @returns a 26-character ULID
 */
export function newUlid(): string {
  const ms = Date.now();
  if (ms > ulidMs) freshUlid(ms);
  else {
    let i = 7;
    while (i >= 0 && ulidRandom[i] === 1023) ulidRandom[i--] = 0;
    if (i < 0) {
      // 2^80 ids in one millisecond: the next millisecond's time digits take over.
      freshUlid(ulidMs + 1);
    } else {
      ulidRandom[i]++;
      if (i < 7) ulidHead = ulidTime + encodeHead();
    }
  }
  return ulidHead + PAIRS[ulidRandom[7]];
}

/** Starts the ids of millisecond `ms`: its time digits and a fresh random part. */
function freshUlid(ms: number): void {
  ulidMs = ms;
  let t = ms;
  let time = "";
  for (let i = 0; i < 10; i++) {
    time = BASE32[t % 32] + time;
    t = Math.floor(t / 32);
  }
  ulidTime = time;
  for (let i = 0; i < 8; i++) ulidRandom[i] = random10();
  ulidHead = time + encodeHead();
}

/**
 * A fresh session id.
 *
 * @returns `sess_` followed by a ULID
 */
export function newSessionId(): string {
  return `sess_${newUlid()}`;
}

/**
 * A fresh job id.
 *
 * @returns `job_` followed by a ULID
 */
export function newJobId(): string {
  return `job_${newUlid()}`;
}

/**
 * A fresh W3C trace id.
 *
 * @returns 32 lowercase hex characters, never all zero
 */
export function newTraceId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[15] |= 1;
  return toHex(bytes);
}

/**
 * A secret with 256 bits of entropy, URL-safe.
 *
 * @param prefix a short tag that says what the secret is for
 * @returns the prefixed secret
 */
export function newSecret(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return prefix + btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/**
 * Lowercase hex of some bytes.
 *
 * @param bytes the bytes
 * @returns their hex encoding
 */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * SHA-256 of a UTF-8 string, as hex.
 *
 * @param text the text to hash
 * @returns 64 hex characters
 */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return toHex(new Uint8Array(digest));
}

/**
 * Canonical JSON: object keys sorted, so equal values hash equally.
 *
 * @param value any JSON value
 * @returns its canonical serialization
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]));
    }
    return v;
  });
}
