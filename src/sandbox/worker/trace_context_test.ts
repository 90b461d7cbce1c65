import { equal, match, notEqual } from "assert";
import { traceparentOf, withTraceparent } from "./trace_context.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";

Deno.test("traceparentOf names the job's trace and span, or a fresh non-zero span", () => {
  equal(traceparentOf(TRACE, "00f067aa0ba902b7"), `00-${TRACE}-00f067aa0ba902b7-01`);
  for (const bad of [undefined, "", "XYZ", "00f067aa0ba902b7ff"]) {
    const value = traceparentOf(TRACE, bad);
    match(value, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    notEqual(value.split("-")[2], "0000000000000000");
  }
});

Deno.test("withTraceparent keeps a traceparent the agent set and the other headers", () => {
  const mine = `00-${TRACE}-1111111111111111-01`;
  const job = `00-${TRACE}-2222222222222222-01`;
  equal(withTraceparent({ traceparent: mine }, job).get("traceparent"), mine);
  const set = withTraceparent([["x-a", "1"]], job);
  equal(set.get("traceparent"), job);
  equal(set.get("x-a"), "1");
});
