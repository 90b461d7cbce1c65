/**
 * Errors of the management API: an ARCP code, a message and details, as
 * JSON `{ error: { code, message, details? } }` with the HTTP status the
 * code maps to.
 *
 * @module
 */
import { ArcpError, type ErrorCode } from "../protocol/errors.ts";

/** The HTTP status of each code the API answers with; anything else is 500. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_REQUEST: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  JOB_NOT_FOUND: 404,
};

/** The body of an error answer. */
export interface ApiErrorBody {
  /** What went wrong. */
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
}

/**
 * An error as an HTTP answer.
 *
 * @param err what was thrown
 * @param status the HTTP status, when not the code's own (409 for a state conflict)
 * @returns the JSON response
 * @example
 * ```ts
 * import { ArcpError } from "../protocol/errors.ts";
 * import { errorResponse } from "./errors.ts";
 * errorResponse(new ArcpError("JOB_NOT_FOUND", "no job job_1")).status; // 404
 * ```
 */
export function errorResponse(err: unknown, status?: number): Response {
  const e = err instanceof ArcpError
    ? err
    : new ArcpError("INTERNAL_ERROR", "the management API failed; see the runtime's log");
  const body: ApiErrorBody = {
    error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) },
  };
  return Response.json(body, { status: status ?? STATUS[e.code] ?? 500 });
}

/**
 * A bad query parameter or body.
 *
 * @param message what is wrong, naming the parameter
 * @param details structured details
 * @returns the error
 */
export function invalid(message: string, details?: Record<string, unknown>): ArcpError {
  return new ArcpError("INVALID_REQUEST", message, details);
}
