import { equal } from "assert";
import { nestsDeeperThan } from "./nesting.ts";

Deno.test("a flat body is within any depth of at least 1, a nested one is measured", () => {
  equal(nestsDeeperThan({ current: 1, total: 2, units: "ticks" }, 1), false);
  equal(nestsDeeperThan({ a: null, b: "x" }, 1), false);
  equal(nestsDeeperThan({}, 0), true);
  equal(nestsDeeperThan("text", 0), false);
  equal(nestsDeeperThan({ a: {} }, 1), true);
  equal(nestsDeeperThan({ a: {} }, 2), false);
  equal(nestsDeeperThan([1, 2], 1), false);
  equal(nestsDeeperThan([[1]], 1), true);
});

Deno.test("an object value inherited through the prototype is not counted, as before", () => {
  const proto = { deep: { deeper: {} } };
  const body = Object.create(proto) as Record<string, unknown>;
  body.flat = 1;
  equal(nestsDeeperThan(body, 1), false);
  body.own = { x: 1 };
  equal(nestsDeeperThan(body, 1), true);
  equal(nestsDeeperThan(body, 2), false);
});
