/**
 * Formats times as `Date.prototype.toISOString` spells them, the date and
 * minute once per minute: a `Date` formatted per timestamp was a measurable
 * part of a short job's cost (several timestamps and log lines each). It
 * imports nothing, so the logger and the wire profile can both use it.
 *
 * @example
 * ```ts
 * import { isoTime } from "./iso_time.ts";
 * console.log(isoTime(0)); // "1970-01-01T00:00:00.000Z"
 * ```
 *
 * @module
 */

/** The minute {@linkcode isoTime} last formatted (epoch ms), and its text up to the seconds. */
let minuteMs = NaN;
let minuteText = "";

/** Two digits of every number below 60, three of every one below 1000. */
const PAD2 = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, "0"));
const PAD3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));

/**
 * A time as `Date.prototype.toISOString` spells it, the date and minute
 * formatted once per minute (a `Date` formatted per timestamp was a
 * measurable part of a short job's cost: several timestamps each).
 *
 * @example
 * ```ts
 * import { isoTime } from "./iso_time.ts";
 * console.log(isoTime(0)); // "1970-01-01T00:00:00.000Z"
 * ```
 *
 * @param ms epoch milliseconds
 * @returns e.g. `2026-05-13T19:42:13.042Z`
 */
export function isoTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) return new Date(ms).toISOString();
  const within = ms % 60_000;
  const minute = ms - within;
  if (minute !== minuteMs) {
    const text = new Date(minute).toISOString();
    // Years past 9999 are spelled differently: those are formatted whole.
    if (text.length !== 24) return new Date(ms).toISOString();
    minuteMs = minute;
    minuteText = text.slice(0, 17);
  }
  return minuteText + PAD2[Math.floor(within / 1000)] + "." + PAD3[within % 1000] + "Z";
}
