/**
 * Who a hello (or an HTTP request) is: the {@linkcode Authenticator}
 * interface behind `session.hello`, static bearer tokens compared in
 * constant time, a chain of authenticators tried in order, the opt-in
 * anonymous scheme, and a tarpit for repeated failed hellos from one
 * address. JWTs are verified by `jwt_auth.ts`.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { newUlid, timingSafeEqual } from "../protocol/ids.ts";

/** Longest principal name; principals appear inside KV keys. */
export const MAX_PRINCIPAL = 200;

/** How an identity was established. */
export type AuthScheme = "token" | "jwt" | "anonymous";

/** Who an authenticated caller is. */
export interface Identity {
  /** The principal: owns jobs and sessions, keys per-principal caps. */
  principal: string;
  /** How it was established. */
  scheme: AuthScheme;
}

/**
 * Why a credential was refused: `details.reason` of the `UNAUTHENTICATED`
 * error and the `reason` label of `arcp_hellos_rejected_total`.
 */
export const AUTH_FAILURES = [
  "bad_token",
  "malformed",
  "expired",
  "not_yet_valid",
  "wrong_audience",
  "wrong_issuer",
  "bad_claims",
  "bad_signature",
  "algorithm_not_allowed",
  "no_matching_key",
  "jwks_unavailable",
  "anonymous_disabled",
] as const;

/** One of {@linkcode AUTH_FAILURES}. */
export type AuthFailure = typeof AUTH_FAILURES[number];

/**
 * An `UNAUTHENTICATED` error saying why. The message must never quote the
 * token.
 *
 * @param reason the failure, carried in `details.reason`
 * @param message one line for the client
 * @returns the error
 * @example
 * ```ts
 * import { authError } from "./auth.ts";
 * authError("expired", "token expired at 2026-01-01T00:00:00.000Z").code; // "UNAUTHENTICATED"
 * ```
 */
export function authError(reason: AuthFailure, message: string): ArcpError {
  return new ArcpError("UNAUTHENTICATED", message, { reason });
}

/**
 * The failure an `UNAUTHENTICATED` error carries.
 *
 * @param err an error from an authenticator
 * @returns its reason, `bad_token` when it names none
 */
export function authFailureOf(err: ArcpError): AuthFailure {
  const reason = err.details?.reason;
  return (AUTH_FAILURES as readonly unknown[]).includes(reason)
    ? reason as AuthFailure
    : "bad_token";
}

/**
 * Turns a presented bearer token into an identity. Implementations never
 * throw and never put the token in an error or a log line.
 */
export interface Authenticator {
  /**
   * Verifies a token.
   *
   * @param token the presented bearer token
   * @returns who it names, or an `UNAUTHENTICATED` error saying why not
   */
  authenticate(token: string): Promise<Identity | ArcpError>;
}

/** The static token table as an {@linkcode Authenticator} (scheme `token`). */
export class TokenAuthenticator implements Authenticator {
  #table: TokenTable;

  /** @param table token → principal */
  constructor(table: TokenTable) {
    this.#table = table;
  }

  /** @inheritdoc */
  authenticate(token: string): Promise<Identity | ArcpError> {
    const principal = this.#table.principalFor(token);
    return Promise.resolve(
      principal === undefined
        ? authError("bad_token", "bearer token not recognised")
        : { principal, scheme: "token" },
    );
  }
}

/**
 * Authenticators tried in order (static tokens first, then JWT); the first
 * identity wins. When all refuse, the first specific refusal is returned
 * (an expired JWT says so rather than "not recognised"). An identity whose
 * principal could not be a principal (empty, too long, `anon:`) is a
 * refusal, whichever authenticator (an embedder's too) produced it.
 */
export class AuthenticatorChain implements Authenticator {
  #links: readonly Authenticator[];

  /** @param links the authenticators, in order */
  constructor(links: readonly Authenticator[]) {
    this.#links = links;
  }

  /** @inheritdoc */
  async authenticate(token: string): Promise<Identity | ArcpError> {
    let refusal: ArcpError | undefined;
    for (const link of this.#links) {
      let answer: Identity | ArcpError;
      try {
        answer = await link.authenticate(token);
      } catch {
        // An authenticator of an embedder's that throws refuses; it never ends the hello badly.
        answer = authError("bad_token", "bearer token not recognised");
      }
      if (!(answer instanceof ArcpError)) {
        const { principal } = answer;
        if (
          typeof principal === "string" && principal.length > 0 &&
          principal.length <= MAX_PRINCIPAL && !isAnonymous(principal)
        ) return answer;
        answer = authError("bad_claims", "the credential names no valid principal");
      }
      if (!refusal || authFailureOf(refusal) === "bad_token") refusal = answer;
    }
    return refusal ?? authError("bad_token", "bearer token not recognised");
  }
}

/**
 * Authenticates an HTTP `Authorization` header (`Bearer <token>`) with the
 * runtime's authenticator, exactly as `session.hello` would authenticate
 * the token: for HTTP APIs beside the WebSocket (the `/v1` API).
 *
 * @param authenticator the runtime's authenticator
 * @param header the `Authorization` header's value, if any
 * @returns the identity, or an `UNAUTHENTICATED` error (answer it with 401)
 * @example
 * ```ts
 * import { authenticateBearer, TokenAuthenticator, TokenTable } from "./auth.ts";
 * const auth = new TokenAuthenticator(new TokenTable({ "s3cret-token": "alice" }));
 * await authenticateBearer(auth, "Bearer s3cret-token"); // { principal: "alice", scheme: "token" }
 * ```
 */
export async function authenticateBearer(
  authenticator: Authenticator,
  header: string | null | undefined,
): Promise<Identity | ArcpError> {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  if (!match) {
    return authError("malformed", "expected an Authorization header: Bearer <token>");
  }
  return await authenticator.authenticate(match[1]);
}

/** The anonymous scheme's caps: each anonymous principal gets these instead of the defaults. */
export interface AnonymousLimits {
  /** Live jobs one anonymous principal may have (default 2). */
  maxLiveJobs: number;
  /** Connected sessions one anonymous principal may have (default 1). */
  maxSessions: number;
  /**
   * Connected anonymous sessions, all principals together (default 32):
   * each anonymous hello is a principal of its own, so the caps above alone
   * do not bound how many there are.
   */
  maxConnected: number;
}

/** Defaults of {@linkcode AnonymousLimits}. */
export const DEFAULT_ANONYMOUS_LIMITS: AnonymousLimits = {
  maxLiveJobs: 2,
  maxSessions: 1,
  maxConnected: 32,
};

/** Prefix of every anonymous principal; no token or JWT may name one. */
export const ANONYMOUS_PREFIX = "anon:";

/**
 * A fresh anonymous identity. Each anonymous hello is a principal of its
 * own; a resume keeps the session's principal (the resume token is the
 * credential then).
 *
 * @returns `anon:<ulid>`
 */
export function anonymousIdentity(): Identity {
  return { principal: `${ANONYMOUS_PREFIX}${newUlid()}`, scheme: "anonymous" };
}

/**
 * Whether a principal is anonymous.
 *
 * @param principal the principal
 * @returns true for `anon:…`
 */
export function isAnonymous(principal: string): boolean {
  return principal.startsWith(ANONYMOUS_PREFIX);
}

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
      if (isAnonymous(principal)) {
        throw new TypeError(
          `principal ${principal}: ${ANONYMOUS_PREFIX} is kept for anonymous sessions`,
        );
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
