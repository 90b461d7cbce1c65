import { equal } from "assert";
import { jobEvent, jobEventJson } from "./fanout.ts";

Deno.test("jobEventJson is byte for byte JSON.stringify of the payload", () => {
  const bodies: Array<[string, Record<string, unknown>]> = [
    ["progress", { current: 1, total: 2, units: "ticks" }],
    ["log", { level: "info", message: 'quotes " backslash \\ ünïcödé 🚀 \u2028', attributes: {} }],
    ["x-vendor.a", { skipped: undefined, date: new Date(0), nested: [1, { a: null }] }],
    ['x-vendor."odd"', JSON.parse('{"__proto__": {"x": 1}, "k": 2}')],
    ["status", {}],
  ];
  for (const [kind, body] of bodies) {
    const payload = jobEvent(kind, body);
    equal(jobEventJson(payload, JSON.stringify(body)), JSON.stringify(payload), kind);
  }
});
