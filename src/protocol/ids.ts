/**
 * Identifier minting: envelope ids, session and job ids, trace ids and
 * resume tokens.
 *
 * @module
 */
import { monotonicFactory } from "ulid";

export { timingSafeEqual } from "./timing_safe.ts";

/** Random bytes drawn from the CSPRNG in bulk: one call per 4 KiB instead of one per character. */
const pool = new Uint8Array(4096);
let poolAt = pool.length;

/** A uniform fraction in [0, 1) from the CSPRNG, the way `ulid` asks for randomness. */
function randomFraction(): number {
  if (poolAt === pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  return pool[poolAt++] / 256;
}

const nextUlid = monotonicFactory(randomFraction);

/**
 * A fresh ULID (monotonic within this process).
 *
 * @returns a 26-character ULID
 */
export function newUlid(): string {
  return nextUlid();
}

/**
 * A fresh session id.
 *
 * @returns `sess_` followed by a ULID
 */
export function newSessionId(): string {
  return `sess_${nextUlid()}`;
}

/**
 * A fresh job id.
 *
 * @returns `job_` followed by a ULID
 */
export function newJobId(): string {
  return `job_${nextUlid()}`;
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
