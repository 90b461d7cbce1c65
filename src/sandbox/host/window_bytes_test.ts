import { equal } from "assert";
import { windowBytes } from "./window_bytes.ts";

/** What the worker charges and the runtime's credit gives back for one event. */
const charged = (kind: string, body: Record<string, unknown>) =>
  kind.length + JSON.stringify(body).length;

const BODIES: Array<[string, Record<string, unknown>]> = [
  ["progress", { current: 1, total: 20_000 }],
  ["log", { level: "info", message: 'quotes " and \\ and\nnewlines, ünïcödé, 😀' }],
  ["x-vendor.acme.blob", { data: "x".repeat(200 * 1024), nested: { a: [1, 2, { b: null }] } }],
  ["thought", {}],
];

Deno.test("an events frame counts exactly what the worker charged, whatever its slot and size", () => {
  for (const j of [0, 7, 42, 123_456]) {
    for (let k = 1; k <= BODIES.length; k++) {
      const items = BODIES.slice(0, k);
      const msg = { t: "events", j, items };
      const expected = items.reduce((sum, [kind, body]) => sum + charged(kind, body), 0);
      equal(windowBytes(msg, JSON.stringify({ m: msg })), expected, `slot ${j}, ${k} items`);
    }
  }
});

Deno.test("an event frame counts its kind and body", () => {
  for (const j of [0, 99]) {
    for (const [kind, body] of BODIES) {
      const msg = { t: "event", j, kind, body };
      equal(windowBytes(msg, JSON.stringify({ m: msg })), charged(kind, body));
    }
  }
});

Deno.test("a chunk counts its data, escaped or not", () => {
  const msg = { t: "chunk", j: 3, data: 'line "one"\nline two\n', encoding: "utf8" };
  equal(windowBytes(msg, JSON.stringify({ m: msg })), msg.data.length);
});

Deno.test("a forged frame never counts below nothing", () => {
  const msg = { t: "events", j: 0, items: Array.from({ length: 500 }, () => 0) };
  equal(windowBytes(msg, JSON.stringify({ m: msg })), 0);
});
