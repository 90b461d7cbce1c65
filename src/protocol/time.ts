/**
 * Timestamps as the wire wants them.
 *
 * @module
 */
import { isoTime } from "../iso_time.ts";

export { isoTime };

/**
 * The current time as RFC 3339 UTC.
 *
 * @returns e.g. `2026-05-13T19:42:13.000Z`
 */
export function nowIso(): string {
  // Events come thousands a second: format each millisecond once.
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = isoTime(ms);
  }
  return lastIso;
}

let lastMs = NaN;
let lastIso = "";

/** RFC 3339 with a `Z` offset, e.g. `2026-05-13T23:42:00Z` or with fractions. */
const UTC_RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

/**
 * Parses an RFC 3339 UTC timestamp.
 *
 * @param text the timestamp
 * @returns epoch milliseconds, or undefined when the text is not RFC 3339 UTC
 */
export function parseUtc(text: string): number | undefined {
  if (!UTC_RFC3339.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : undefined;
}
