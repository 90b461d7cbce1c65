/**
 * What the runtime says while its storage fails (a full disk, an I/O error):
 * the errors requests get and the state health checks report.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";

/** How much of a storage error's own message is repeated to clients and operators. */
const MAX_CAUSE = 200;

/** The state of the runtime's storage. */
export interface StorageHealth {
  /** Whether commits succeed (or nothing says otherwise). */
  ok: boolean;
  /** The failing commit's error, while failing. */
  error?: string;
  /** When commits started failing (RFC 3339), while failing. */
  since?: string;
}

/**
 * The error a request that needs a write gets while storage fails: it is
 * refused at once rather than held until the disk has room, with
 * `details.storage: "failing"` so clients and operators can tell it from
 * other internal errors. `INTERNAL_ERROR` is always retryable.
 *
 * @param cause the storage error
 * @returns the refusal
 * @example
 * ```ts
 * import { storageUnavailable } from "./storage_health.ts";
 * storageUnavailable(new Error("database or disk is full")).toPayload().details; // { storage: "failing" }
 * ```
 */
export function storageUnavailable(cause: unknown): ArcpError {
  return new ArcpError(
    "INTERNAL_ERROR",
    `storage is failing (${
      describeCause(cause)
    }): this request needs a write, so nothing was done; retry once storage recovers`,
    { storage: "failing" },
  );
}

/**
 * The error a session is told when events of its jobs are held back because
 * storage fails: they are kept and delivered, in order, once it recovers.
 *
 * @param cause the storage error
 * @returns the notice
 */
export function storageHeld(cause: unknown): ArcpError {
  return new ArcpError(
    "INTERNAL_ERROR",
    `storage is failing (${
      describeCause(cause)
    }): events are held back and will be delivered in order once it recovers`,
    { storage: "failing" },
  );
}

/**
 * A storage error in a few words.
 *
 * @param cause what a commit threw
 * @returns its message, shortened
 */
export function describeCause(cause: unknown): string {
  const text = cause instanceof Error ? cause.message : String(cause);
  return text.length > MAX_CAUSE ? `${text.slice(0, MAX_CAUSE)}…` : text;
}
