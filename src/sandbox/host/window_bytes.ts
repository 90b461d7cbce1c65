/**
 * What a relayed worker message takes of a job's byte window
 * (`EVENT_WINDOW_BYTES`), as the sandbox process counts it from the text it
 * relays. The worker and the runtime count an event as its kind's length
 * plus its body's JSON, a result chunk as its data's length; the credit the
 * runtime grants gives back exactly that. The frame's text holds more (the
 * message's keys, the slot, brackets, quotes around the kind), and counting
 * it would drift a long job's tally upward until the flood check ended a
 * job that kept to its window. So that structure is taken off; what is left
 * is exactly what the runtime counts when the text is `JSON.stringify`'s,
 * as a worker's `events` text is (built from each event's JSON at emit),
 * and more when it is not (spaces, escapes, duplicate keys; a kind that
 * needs escaping, which the runtime refuses anyway). A hostile worker's
 * text may count less, with numbers spelt shorter than JavaScript spells
 * them (`1e20`, 21 digits in the runtime's JSON): this count then bounds the
 * text in flight to the runtime, and the runtime, counting the JSON it
 * makes of what it parsed, ends the job at its own bound.
 *
 * @module
 */

/** An `event` frame's text around its kind and body, for a one-digit slot. */
const EVENT_FRAME = JSON.stringify({ m: { t: "event", j: 0, kind: "", body: {} } }).length - 2;

/** An `events` frame's text around its items, for a one-digit slot. */
const EVENTS_FRAME = JSON.stringify({ m: { t: "events", j: 0, items: [] } }).length;

/** `["",]` around one item's kind and body, and the comma before every item but the first. */
const ITEM_FRAME = 6;

/**
 * The bytes of a credit-counted message (`event`, `events`, `chunk`) the
 * byte window holds.
 *
 * @example
 * ```ts
 * import { windowBytes } from "./window_bytes.ts";
 * const msg = { t: "events", j: 0, items: [["progress", { current: 1 }]] };
 * windowBytes(msg, JSON.stringify({ m: msg })); // 8 + 13: "progress", {"current":1}
 * ```
 *
 * @param msg the message as the worker posted it
 * @param text the frame text relaying it (`{"m":…}`)
 * @returns its bytes, at least 0
 */
export function windowBytes(
  msg: { t?: unknown; j?: unknown; items?: unknown; data?: unknown },
  text: string,
): number {
  if (msg.t === "chunk") return typeof msg.data === "string" ? msg.data.length : text.length;
  const slot = String(msg.j).length - 1;
  if (msg.t === "event") return Math.max(0, text.length - EVENT_FRAME - slot);
  const items = Array.isArray(msg.items) ? msg.items.length : 0;
  return Math.max(0, text.length - EVENTS_FRAME - slot - ITEM_FRAME * items + 1);
}
