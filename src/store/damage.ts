/**
 * Damage in the store as an error value: what a read found wrong, as the
 * `INTERNAL_ERROR` a session is told (with `details.storage` naming the kind),
 * and as the reason the runtime refuses to start.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";

/**
 * What is wrong: the database refused a read (`unreadable`), entries that
 * must be there are not (`missing`), or a value is not what was written
 * (`malformed`).
 */
export type DamageKind = "unreadable" | "missing" | "malformed";

/**
 * The store is damaged. An `INTERNAL_ERROR` (always retryable on the wire),
 * with `details.storage` set to the {@linkcode DamageKind}.
 *
 * @example
 * ```ts
 * import { StoreDamageError } from "./damage.ts";
 * const err = new StoreDamageError("missing", "session log lacks seq 7", { seq: 7 });
 * console.log(err.toPayload().details); // { storage: "missing", seq: 7 }
 * ```
 */
export class StoreDamageError extends ArcpError {
  /** What is wrong. */
  readonly kind: DamageKind;

  /**
   * Creates the error.
   *
   * @param kind what is wrong
   * @param message what was being read and what failed; prefixed with `storage: `
   * @param details more details for the client (never a secret)
   */
  constructor(kind: DamageKind, message: string, details: Record<string, unknown> = {}) {
    super("INTERNAL_ERROR", `storage: ${message}`, { storage: kind, ...details });
    this.name = "StoreDamageError";
    this.kind = kind;
  }
}

/**
 * A read of KV that threw, as damage. An error that already is one passes
 * through unchanged.
 *
 * @param what what was being read, e.g. `session log of sess_… after seq 12`
 * @param cause what the read threw
 * @param details more details for the client
 * @returns the error to throw
 */
export function unreadable(
  what: string,
  cause: unknown,
  details: Record<string, unknown> = {},
): StoreDamageError {
  if (cause instanceof StoreDamageError) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new StoreDamageError("unreadable", `could not read ${what}: ${reason}`, details);
}

/**
 * Runs a read, turning what it throws into {@linkcode StoreDamageError}.
 *
 * @param what what is being read
 * @param read the read
 * @param details more details for the client
 * @returns what the read returned
 */
export async function reading<T>(
  what: string,
  read: () => Promise<T>,
  details: Record<string, unknown> = {},
): Promise<T> {
  try {
    return await read();
  } catch (err) {
    throw unreadable(what, err, details);
  }
}

/**
 * A listing whose failed reads are turned into {@linkcode StoreDamageError}.
 *
 * @param what what is being listed
 * @param listing the listing
 * @returns its items
 */
export async function* readingAll<T>(what: string, listing: AsyncIterable<T>): AsyncGenerator<T> {
  const items = listing[Symbol.asyncIterator]();
  while (true) {
    let next: IteratorResult<T>;
    try {
      next = await items.next();
    } catch (err) {
      throw unreadable(what, err);
    }
    if (next.done) return;
    yield next.value;
  }
}
