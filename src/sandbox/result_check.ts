/**
 * The check every inline result passes, whoever produced it (an agent's
 * return, a host-side tool): pure, so both the sandbox supervisor and the
 * jobs layer may use it without depending on each other.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { MAX_RESULT_BYTES } from "./worker/limits.ts";
import { MAX_NESTING_DEPTH, nestsDeeperThan } from "../protocol/nesting.ts";

/**
 * Checks an inline result: it must be JSON and fit the inline cap.
 *
 * @example
 * ```ts
 * import { checkResult } from "./result_check.ts";
 * console.log(checkResult({ ok: true, at: new Date(0) })); // { ok: true, at: "1970-01-01T00:00:00.000Z" }
 * ```
 *
 * @param value what the agent returned
 * @returns the JSON-safe result
 * @throws {ArcpError} `INTERNAL_ERROR` when it cannot be sent inline or nests too deep
 */
export function checkResult(value: unknown): unknown {
  if (nestsDeeperThan(value, MAX_NESTING_DEPTH)) {
    throw new ArcpError(
      "INTERNAL_ERROR",
      `agent result nests objects or arrays deeper than ${MAX_NESTING_DEPTH} levels`,
      { cap: "result_depth", limit: MAX_NESTING_DEPTH },
    );
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new ArcpError("INTERNAL_ERROR", `agent result is not JSON: ${(err as Error).message}`);
  }
  if (text === undefined) return null;
  if (text.length > MAX_RESULT_BYTES) {
    throw new ArcpError(
      "INTERNAL_ERROR",
      `agent result is ${text.length} bytes; the inline cap is ${MAX_RESULT_BYTES}`,
    );
  }
  return JSON.parse(text);
}
