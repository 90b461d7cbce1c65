/**
 * JWT bearer tokens from an identity provider, verified with `jose`: HS256
 * (and HS384/HS512) with a shared secret, RS/PS/ES/EdDSA with keys from a
 * JWKS URL (cached; a token naming a `kid` the cache lacks refetches the set,
 * so a provider's key rotation needs nothing from the operator).
 *
 * Every token must carry `exp`; `nbf` is honoured when present; `iss` and
 * `aud` are checked when configured. The allowed algorithms are explicit and
 * each is bound to its key source (HS* only ever to the secret, the others
 * only to the JWKS), so `alg: none` and an HS256 token "signed" with a
 * provider's public key are refused. The principal is one claim (`sub` by
 * default).
 *
 * @module
 */
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from "jose";
import type { ArcpError } from "../protocol/errors.ts";
import {
  type Authenticator,
  authError,
  type Identity,
  isAnonymous,
  MAX_PRINCIPAL,
} from "./auth.ts";

/** Options of {@linkcode JwtAuthenticator}. */
export interface JwtOptions {
  /** Shared secret of HS256 tokens (at least 32 bytes). Read it from a file or the environment, never a flag. */
  secret?: string | Uint8Array;
  /** The identity provider's JWKS URL (https, or http on loopback) for RS/PS/ES/EdDSA tokens. */
  jwksUrl?: string;
  /** Accepted `iss` value(s); unchecked when unset. */
  issuer?: string | string[];
  /** Accepted `aud` value(s); unchecked when unset. */
  audience?: string | string[];
  /** The claim naming the principal (default `sub`). */
  principalClaim?: string;
  /**
   * Allowed `alg` values. Default: HS256 when a secret is set, RS256 and
   * ES256 when a JWKS URL is.
   */
  algorithms?: string[];
  /** Leeway for `exp` and `nbf`, seconds (default 30). */
  clockToleranceSec?: number;
  /** How long a JWKS fetch may take before the hello is refused, ms (default 5000). */
  jwksTimeoutMs?: number;
  /** After a fetch, how long an unknown `kid` does not refetch the set, ms (default 30,000). */
  jwksCooldownMs?: number;
  /** How long a fetched set is used before it is fetched again, ms (default 10 minutes). */
  jwksCacheMaxAgeMs?: number;
}

const SECRET_ALGS = new Set(["HS256", "HS384", "HS512"]);
const KEY_ALGS = new Set([
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
]);

/** Shortest HS256 secret accepted: RFC 7518 §3.2 asks for a key at least as long as the hash. */
const MIN_SECRET_BYTES = 32;

/** A JWKS that could not be had (unreachable, timed out, not a key set). */
class JwksUnavailable extends Error {}

/** Verifies JWT bearer tokens (scheme `jwt`). */
export class JwtAuthenticator implements Authenticator {
  #secret?: Uint8Array;
  #jwks?: JWTVerifyGetKey;
  #jwksUrl?: URL;
  #timeoutMs: number;
  #algorithms: string[];
  #claim: string;
  #issuer?: string | string[];
  #audience?: string | string[];
  #toleranceSec: number;

  /**
   * @param options key sources, checks and the principal claim
   * @throws {TypeError} on a configuration that could accept forged tokens or none at all
   */
  constructor(options: JwtOptions) {
    if (options.secret !== undefined) {
      this.#secret = typeof options.secret === "string"
        ? new TextEncoder().encode(options.secret)
        : options.secret;
      if (this.#secret.length < MIN_SECRET_BYTES) {
        throw new TypeError(`JWT secret: expected at least ${MIN_SECRET_BYTES} bytes`);
      }
    }
    if (options.jwksUrl !== undefined) this.#jwksUrl = jwksUrl(options.jwksUrl);
    if (!this.#secret && !this.#jwksUrl) {
      throw new TypeError("JWT: expected a secret or a JWKS URL");
    }
    this.#algorithms = options.algorithms ?? [
      ...(this.#secret ? ["HS256"] : []),
      ...(this.#jwksUrl ? ["RS256", "ES256"] : []),
    ];
    if (this.#algorithms.length === 0) throw new TypeError("JWT: expected at least one algorithm");
    for (const alg of this.#algorithms) {
      if (SECRET_ALGS.has(alg)) {
        if (!this.#secret) throw new TypeError(`JWT algorithm ${alg} needs a secret`);
      } else if (KEY_ALGS.has(alg)) {
        if (!this.#jwksUrl) throw new TypeError(`JWT algorithm ${alg} needs a JWKS URL`);
      } else {
        throw new TypeError(
          `JWT algorithm ${JSON.stringify(alg)} is not supported (one of ${
            [...SECRET_ALGS, ...KEY_ALGS].join(", ")
          })`,
        );
      }
    }
    this.#timeoutMs = options.jwksTimeoutMs ?? 5000;
    if (this.#jwksUrl) {
      this.#jwks = createRemoteJWKSet(this.#jwksUrl, {
        timeoutDuration: this.#timeoutMs,
        cooldownDuration: options.jwksCooldownMs ?? 30_000,
        cacheMaxAge: options.jwksCacheMaxAgeMs ?? 600_000,
      });
    }
    this.#claim = options.principalClaim ?? "sub";
    this.#issuer = options.issuer;
    this.#audience = options.audience;
    this.#toleranceSec = options.clockToleranceSec ?? 30;
  }

  /** @inheritdoc */
  async authenticate(token: string): Promise<Identity | ArcpError> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      return authError("bad_token", "bearer token not recognised");
    }
    if (typeof alg !== "string" || !this.#algorithms.includes(alg)) {
      return authError(
        "algorithm_not_allowed",
        `token algorithm ${JSON.stringify(String(alg).slice(0, 16))} is not allowed (allowed: ${
          this.#algorithms.join(", ")
        })`,
      );
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#keyFor, {
        algorithms: this.#algorithms,
        issuer: this.#issuer,
        audience: this.#audience,
        clockTolerance: this.#toleranceSec,
        requiredClaims: ["exp"],
      }));
    } catch (err) {
      return this.#refusal(err);
    }
    const principal = payload[this.#claim];
    if (typeof principal !== "string" || !principal || principal.length > MAX_PRINCIPAL) {
      return authError(
        "bad_claims",
        `token claim "${this.#claim}" must be a string of 1-${MAX_PRINCIPAL} characters`,
      );
    }
    if (isAnonymous(principal)) {
      return authError("bad_claims", `token claim "${this.#claim}" names an anonymous principal`);
    }
    return { principal, scheme: "jwt" };
  }

  /** HS* tokens verify only against the secret, every other algorithm only against the JWKS. */
  #keyFor: JWTVerifyGetKey = async (header, token) => {
    if (SECRET_ALGS.has(header.alg ?? "")) return this.#secret!;
    try {
      return await this.#jwks!(header, token);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "ERR_JWKS_NO_MATCHING_KEY" || code === "ERR_JWKS_MULTIPLE_MATCHING_KEYS") {
        throw err;
      }
      throw new JwksUnavailable(
        code === "ERR_JWKS_TIMEOUT"
          ? `did not answer within ${this.#timeoutMs} ms`
          : code === "ERR_JWKS_INVALID"
          ? "did not return a valid key set"
          : `could not be fetched (${(err as Error).message})`,
      );
    }
  };

  /**
   * The refusal of a token `jose` did not verify.
   *
   * @param err what `jwtVerify` threw
   * @returns an `UNAUTHENTICATED` error naming the failed check
   */
  #refusal(err: unknown): ArcpError {
    if (err instanceof JwksUnavailable) {
      return authError(
        "jwks_unavailable",
        `the identity provider's keys are unavailable: JWKS ${err.message}; try again later`,
      );
    }
    const { code, claim } = err as { code?: string; claim?: string };
    switch (code) {
      case "ERR_JWT_EXPIRED":
        return authError("expired", "token expired");
      case "ERR_JWT_CLAIM_VALIDATION_FAILED":
        if (claim === "nbf") return authError("not_yet_valid", "token not valid yet (nbf)");
        if (claim === "aud") {
          return authError("wrong_audience", `token audience is not ${list(this.#audience)}`);
        }
        if (claim === "iss") {
          return authError("wrong_issuer", `token issuer is not ${list(this.#issuer)}`);
        }
        return authError("bad_claims", `token claim "${claim}" is missing or invalid`);
      case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
        return authError("bad_signature", "token signature does not verify");
      case "ERR_JOSE_ALG_NOT_ALLOWED":
        return authError("algorithm_not_allowed", "token algorithm is not allowed");
      case "ERR_JWKS_NO_MATCHING_KEY":
        return authError("no_matching_key", "no key of the identity provider matches the token");
      case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
        return authError("bad_signature", "token signature does not verify");
      default:
        return authError("malformed", "token is not a valid JWT");
    }
  }
}

/**
 * The JWKS URL, checked: keys fetched in the clear could be swapped.
 *
 * @param text the configured URL
 * @returns it, parsed
 * @throws {TypeError} unless https, or http on a loopback host
 */
function jwksUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(`JWKS URL: not a URL: ${text}`);
  }
  const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname) ||
    url.hostname.startsWith("127.");
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new TypeError(`JWKS URL: expected https:// (http only on loopback), got ${url.protocol}`);
  }
  return url;
}

/**
 * A configured value or values, for a message.
 *
 * @param v the value(s)
 * @returns them quoted and joined
 */
function list(v: string | string[] | undefined): string {
  return [v ?? []].flat().map((x) => JSON.stringify(x)).join(" or ");
}
