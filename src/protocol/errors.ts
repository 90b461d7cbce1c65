/**
 * The ARCP error taxonomy (ARCP.md §6) and the one error class the runtime
 * throws and passes around as a value.
 *
 * @module
 */
import { z } from "zod";

/** The fifteen error codes that may appear on the wire. */
export const ERROR_CODES = [
  "PERMISSION_DENIED",
  "LEASE_SUBSET_VIOLATION",
  "JOB_NOT_FOUND",
  "DUPLICATE_KEY",
  "AGENT_NOT_AVAILABLE",
  "AGENT_VERSION_NOT_AVAILABLE",
  "CANCELLED",
  "TIMEOUT",
  "RESUME_WINDOW_EXPIRED",
  "HEARTBEAT_LOST",
  "LEASE_EXPIRED",
  "BUDGET_EXHAUSTED",
  "INVALID_REQUEST",
  "UNAUTHENTICATED",
  "INTERNAL_ERROR",
] as const;

/** One of the fifteen ARCP error codes. */
export type ErrorCode = typeof ERROR_CODES[number];

/** Schema of an ARCP error code. */
export const ErrorCodeSchema: z.ZodEnum<{ [K in ErrorCode]: K }> = z.enum(ERROR_CODES);

/** The error payload carried by `session.error`, `job.error` and `tool_result` errors. */
export type ErrorPayload = {
  /** The ARCP code. */
  code: ErrorCode;
  /** What went wrong, never empty. */
  message: string;
  /** Whether the same request may succeed later. */
  retryable: boolean;
  /** Structured details. */
  details?: Record<string, unknown>;
};

/** Schema of {@linkcode ErrorPayload}. */
export const ErrorPayloadSchema: z.ZodObject<{
  code: typeof ErrorCodeSchema;
  message: z.ZodString;
  retryable: z.ZodBoolean;
  details: z.ZodOptional<z.ZodRecord<z.ZodString, z.ZodUnknown>>;
}> = z.object({
  code: ErrorCodeSchema,
  message: z.string().min(1),
  retryable: z.boolean(),
  details: z.record(z.string(), z.unknown()).optional(),
});

/**
 * The retryable flag each code carries on the wire. `LEASE_EXPIRED` and
 * `BUDGET_EXHAUSTED` are never retryable, `INTERNAL_ERROR` always is
 * (the reference client drops an `INTERNAL_ERROR` that says otherwise).
 */
const RETRYABLE: Record<ErrorCode, boolean> = {
  PERMISSION_DENIED: false,
  LEASE_SUBSET_VIOLATION: false,
  JOB_NOT_FOUND: false,
  DUPLICATE_KEY: false,
  AGENT_NOT_AVAILABLE: false,
  AGENT_VERSION_NOT_AVAILABLE: false,
  CANCELLED: false,
  TIMEOUT: false,
  RESUME_WINDOW_EXPIRED: false,
  HEARTBEAT_LOST: false,
  LEASE_EXPIRED: false,
  BUDGET_EXHAUSTED: false,
  INVALID_REQUEST: false,
  UNAUTHENTICATED: false,
  INTERNAL_ERROR: true,
};

/**
 * An error that carries an ARCP code. Everything the runtime rejects is one
 * of these, so the code that reaches the wire is decided where the fault is
 * found and never guessed later.
 *
 * @example
 * ```ts
 * import { ArcpError } from "./errors.ts";
 * const err = new ArcpError("JOB_NOT_FOUND", "no job job_1");
 * console.log(err.toPayload().retryable); // false
 * ```
 */
export class ArcpError extends Error {
  /** The ARCP code. */
  readonly code: ErrorCode;
  /** Whether a client may retry the same request. */
  readonly retryable: boolean;
  /** Structured details for the client (never secrets). */
  readonly details?: Record<string, unknown>;

  /**
   * Creates an error with an ARCP code.
   *
   * @param code the ARCP error code
   * @param message a human-readable, non-empty message
   * @param details optional structured details
   */
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message || code);
    this.name = "ArcpError";
    this.code = code;
    this.retryable = RETRYABLE[code];
    this.details = details;
  }

  /**
   * The wire form of this error.
   *
   * @returns the error payload
   */
  toPayload(): ErrorPayload {
    const p: ErrorPayload = { code: this.code, message: this.message, retryable: this.retryable };
    if (this.details) p.details = this.details;
    return p;
  }
}

/**
 * Turns anything thrown into an {@linkcode ArcpError}; unknown faults become
 * `INTERNAL_ERROR`.
 *
 * @param err what was thrown
 * @returns an ArcpError
 */
export function toArcpError(err: unknown): ArcpError {
  if (err instanceof ArcpError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ArcpError("INTERNAL_ERROR", message || "internal error");
}
