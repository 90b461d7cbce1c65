/**
 * Bearer-token authentication with constant-time comparison, and a
 * tarpit for repeated failed hellos from one address.
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

/**
 * Slows addresses that keep failing authentication, and never refuses a
 * valid token.
 *
 * Why a tarpit and not a lockout: every local client and every agent share
 * 127.0.0.1, so the lockout this replaces (ten failures, then every hello
 * from the address refused for a minute) let one job lock every local
 * client out. So a hello is always checked, and a valid token is always
 * welcomed at once. What is slowed is the answer to a failure: once an
 * address has `max` failures within `windowMs`, each further failure is
 * answered only after a delay that doubles (1 s, 2 s, 4 s…) up to
 * `maxDelayMs`, so a client that waits for its answers guesses at most
 * about once per `maxDelayMs`. At most `maxHeld` answers per address are
 * held at once, so the tarpit cannot hold the runtime's sockets hostage;
 * beyond that, failures are answered at once. What no throttle that still
 * welcomes valid tokens at once can stop is a client that opens many
 * connections and takes a missing welcome as its answer; that is why
 * tokens must be long and random (`arcp serve` generates 192-bit ones) and
 * why agents may not reach the runtime's listeners at all.
 */
export class HelloThrottle {
  #failures = new Map<string, number[]>();
  #held = new Map<string, number>();
  #max: number;
  #windowMs: number;
  #maxDelayMs: number;
  #maxHeld: number;

  /**
   * @param max failures per window answered without delay
   * @param windowMs the window
   * @param maxDelayMs the longest a failure's answer is held
   * @param maxHeld answers held at once per address
   */
  constructor(max = 10, windowMs = 60_000, maxDelayMs = 10_000, maxHeld = 16) {
    this.#max = max;
    this.#windowMs = windowMs;
    this.#maxDelayMs = maxDelayMs;
    this.#maxHeld = maxHeld;
  }

  /**
   * Records a failed hello and waits as long as its address has earned
   * before the failure may be answered.
   *
   * @param addr the address
   * @returns resolves when the refusal may be sent, with how long it was held (ms; 0 when not)
   */
  async failed(addr: string): Promise<number> {
    const now = Date.now();
    if (this.#failures.size > 1024) this.#forgetStale(now);
    const recent = (this.#failures.get(addr) ?? []).filter((t) => now - t < this.#windowMs);
    recent.push(now);
    // Enough to know how far past `max` the address is; the delay is capped long before.
    if (recent.length > this.#max + 32) recent.shift();
    this.#failures.set(addr, recent);
    const excess = recent.length - this.#max;
    const held = this.#held.get(addr) ?? 0;
    if (excess <= 0 || held >= this.#maxHeld) return 0;
    this.#held.set(addr, held + 1);
    const delay = Math.min(this.#maxDelayMs, 1000 * 2 ** Math.min(excess - 1, 30));
    try {
      await new Promise((resolve) => setTimeout(resolve, delay));
    } finally {
      const left = (this.#held.get(addr) ?? 1) - 1;
      if (left > 0) this.#held.set(addr, left);
      else this.#held.delete(addr);
    }
    return delay;
  }

  #forgetStale(now: number): void {
    for (const [addr, times] of this.#failures) {
      if (now - times[times.length - 1] >= this.#windowMs) this.#failures.delete(addr);
    }
  }
}
