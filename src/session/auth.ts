/**
 * Bearer-token authentication with constant-time comparison, and a
 * throttle on repeated failed hellos from one address.
 *
 * @module
 */
import { timingSafeEqual } from "../protocol/ids.ts";

/** Longest principal name; principals appear inside KV keys. */
export const MAX_PRINCIPAL = 200;

/** Maps bearer tokens to principals. */
export class TokenTable {
  #entries: Array<[string, string]>;

  /**
   * @param tokens token → principal
   * @throws {TypeError} on an empty token or a bad principal
   */
  constructor(tokens: Record<string, string>) {
    this.#entries = Object.entries(tokens);
    for (const [token, principal] of this.#entries) {
      if (!token) throw new TypeError("empty token");
      if (!principal || principal.length > MAX_PRINCIPAL) {
        throw new TypeError(`principal must be 1-${MAX_PRINCIPAL} characters`);
      }
    }
  }

  /** How many tokens are configured. */
  get size(): number {
    return this.#entries.length;
  }

  /**
   * The principal a token names. Every configured token is compared, in
   * constant time, so timing reveals nothing about which one came close.
   *
   * @param token the presented token
   * @returns the principal, or undefined
   */
  principalFor(token: string): string | undefined {
    let found: string | undefined;
    for (const [candidate, principal] of this.#entries) {
      if (timingSafeEqual(candidate, token)) found ??= principal;
    }
    return found;
  }
}

/** Throttles addresses that keep failing authentication. */
export class HelloThrottle {
  #failures = new Map<string, number[]>();
  #max: number;
  #windowMs: number;

  /**
   * @param max failures allowed per window
   * @param windowMs the window
   */
  constructor(max = 10, windowMs = 60_000) {
    this.#max = max;
    this.#windowMs = windowMs;
  }

  /**
   * How long an address must wait before its next hello is considered.
   *
   * @param addr the address
   * @returns milliseconds, 0 when it may try now
   */
  retryAfterMs(addr: string): number {
    const now = Date.now();
    const recent = (this.#failures.get(addr) ?? []).filter((t) => now - t < this.#windowMs);
    if (recent.length === 0) this.#failures.delete(addr);
    else this.#failures.set(addr, recent);
    return recent.length >= this.#max ? this.#windowMs - (now - recent[0]) : 0;
  }

  /**
   * Records a failed hello.
   *
   * @param addr the address
   */
  fail(addr: string): void {
    const list = this.#failures.get(addr) ?? [];
    list.push(Date.now());
    if (list.length > this.#max) list.shift();
    this.#failures.set(addr, list);
  }
}
