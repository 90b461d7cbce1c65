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
  // Runs of one kind and changes of kind alike (a run's kind is spelled once).
  for (const [kind, body] of [...bodies, bodies[0], bodies[0], ...bodies, bodies[1]]) {
    const payload = jobEvent(kind, body);
    equal(jobEventJson(payload, JSON.stringify(body)), JSON.stringify(payload), kind);
  }
  // Times far from now are spelled with a sign and six year digits: still nothing to escape.
  for (const ms of [0, -62_198_755_200_000, 8.64e15]) {
    const payload = { kind: "status", ts: new Date(ms).toISOString(), body: { phase: "x" } };
    equal(jobEventJson(payload, JSON.stringify(payload.body)), JSON.stringify(payload), payload.ts);
  }
});
