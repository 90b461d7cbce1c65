/**
 * Query parameters of the management API: integers in a range, with a
 * clear 400 when a value is out of it.
 *
 * @module
 */
import { invalid } from "./errors.ts";

/**
 * A page size: absent → the default; above the maximum → 400 with
 * `details {limit, max}`.
 *
 * @param text the parameter
 * @param fallback the default
 * @param max the largest allowed
 * @returns the size
 * @throws {ArcpError} `INVALID_REQUEST`
 */
export function limitParam(text: string | undefined, fallback: number, max: number): number {
  if (text === undefined || text === "") return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw invalid(`limit: expected an integer from 1 to ${max}, got ${JSON.stringify(text)}`, {
      limit: text,
      max,
    });
  }
  if (n > max) throw invalid(`limit ${n} is above the maximum ${max}`, { limit: n, max });
  return n;
}

/**
 * A log position: absent → -1 (from the start).
 *
 * @param text the parameter
 * @param name its name, for the message
 * @returns the position
 * @throws {ArcpError} `INVALID_REQUEST` unless an integer ≥ -1
 */
export function afterParam(text: string | undefined, name = "after"): number {
  if (text === undefined || text === "") return -1;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < -1) {
    throw invalid(`${name}: expected an integer ≥ -1, got ${JSON.stringify(text)}`);
  }
  return n;
}
