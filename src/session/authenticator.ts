/**
 * The runtime's authenticator, built from its options: static tokens first,
 * then JWT, then an embedder's own, as one chain; and the anonymous
 * scheme's caps when it is turned on.
 *
 * HTTP routes beside the WebSocket authenticate with the same chain through
 * `authenticateBearer` (`auth.ts`), so a token accepted by `session.hello` is
 * accepted there and nothing else is.
 *
 * @module
 */
import {
  type AnonymousLimits,
  type Authenticator,
  AuthenticatorChain,
  DEFAULT_ANONYMOUS_LIMITS,
  TokenAuthenticator,
  TokenTable,
} from "./auth.ts";
import { JwtAuthenticator, type JwtOptions } from "./jwt_auth.ts";

/** Who may connect. */
export interface AuthOptions {
  /** Bearer token → principal. */
  tokens?: Record<string, string>;
  /** JWT bearer tokens from an identity provider. */
  jwt?: JwtOptions;
  /**
   * The anonymous scheme (`auth.scheme: "anonymous"`, no token): off by
   * default. `true` turns it on with {@linkcode DEFAULT_ANONYMOUS_LIMITS};
   * an object sets its caps.
   */
  anonymous?: boolean | Partial<AnonymousLimits>;
  /** More authenticators of the embedder's, tried after tokens and JWT. */
  authenticators?: Authenticator[];
}

/** What {@linkcode buildAuth} made. */
export interface BuiltAuth {
  /** Tokens, then JWT, then the embedder's authenticators. */
  authenticator: Authenticator;
  /** The anonymous caps, when the scheme is on. */
  anonymous?: AnonymousLimits;
}

/**
 * Builds the runtime's authenticator.
 *
 * @param options tokens, JWT, anonymous, custom authenticators
 * @returns the chain and the anonymous caps
 * @throws {TypeError} on a bad token table or JWT configuration
 * @example
 * ```ts
 * import { buildAuth } from "./authenticator.ts";
 * const { authenticator } = buildAuth({ tokens: { "s3cret-token": "alice" } });
 * await authenticator.authenticate("s3cret-token"); // { principal: "alice", scheme: "token" }
 * ```
 */
export function buildAuth(options: AuthOptions): BuiltAuth {
  const links: Authenticator[] = [new TokenAuthenticator(new TokenTable(options.tokens ?? {}))];
  if (options.jwt) links.push(new JwtAuthenticator(options.jwt));
  links.push(...options.authenticators ?? []);
  const anon = options.anonymous;
  let anonymous: AnonymousLimits | undefined;
  if (anon) {
    anonymous = { ...DEFAULT_ANONYMOUS_LIMITS, ...(anon === true ? {} : anon) };
    for (const [name, v] of Object.entries(anonymous)) {
      if (!Number.isInteger(v) || v < 1) {
        throw new TypeError(`anonymous.${name}: expected a positive integer, got ${v}`);
      }
    }
  }
  return { authenticator: new AuthenticatorChain(links), anonymous };
}
