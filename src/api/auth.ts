/**
 * Who calls the management API: the bearer token of the `Authorization`
 * header, verified by the same verifier as `session.hello`. Tokens are never
 * read from the query string (URLs reach logs).
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";

/**
 * Verifies a bearer token.
 *
 * @param token the presented token
 * @returns its principal, or undefined when the token is not valid
 */
export type Authenticate = (token: string) => string | undefined | Promise<string | undefined>;

/** The caller of one request. */
export interface Caller {
  /** Its principal. */
  principal: string;
  /** Whether it is an admin (sees and may act on everything). */
  admin: boolean;
}

/**
 * Holds back the answer to a failed authentication, as the failed-hello
 * tarpit does for `session.hello`, so `/v1` is no faster a way to guess
 * tokens.
 *
 * @param addr the peer's address
 * @returns resolves when the refusal may be sent
 */
export type OnAuthFailure = (addr: string) => Promise<unknown>;

/**
 * The caller of a request.
 *
 * @param header the `Authorization` header
 * @param authenticate the verifier
 * @param admins admin principals
 * @param failed holds back a refusal, with the peer's address
 * @returns the caller
 * @throws {ArcpError} `UNAUTHENTICATED` without a bearer token or with a bad one
 */
export async function callerOf(
  header: string | undefined,
  authenticate: Authenticate,
  admins: ReadonlySet<string>,
  failed: () => Promise<unknown> = () => Promise.resolve(),
): Promise<Caller> {
  const token = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  if (!token) {
    throw new ArcpError("UNAUTHENTICATED", "send Authorization: Bearer <token>");
  }
  const principal = await authenticate(token);
  if (principal === undefined) {
    await failed();
    throw new ArcpError("UNAUTHENTICATED", "the token is not valid");
  }
  return { principal, admin: admins.has(principal) };
}

/**
 * Refuses a caller that is not an admin.
 *
 * @param caller the caller
 * @param what what it asked for, for the message
 * @throws {ArcpError} `PERMISSION_DENIED`
 */
export function requireAdmin(caller: Caller, what: string): void {
  if (!caller.admin) {
    throw new ArcpError("PERMISSION_DENIED", `${what} is for admin principals only`);
  }
}
