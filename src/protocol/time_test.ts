import { equal, throws } from "assert";
import { isoTime, nowIso } from "./time.ts";

Deno.test("isoTime spells a time as toISOString does, across minutes, years and its edges", () => {
  const times = [0, 1, 999, 1000, 59_999, 60_000, 60_001, 1796069006070, 253402300799999];
  // Every few milliseconds through several minutes, in and out of order.
  for (let t = 1796068990000; t < 1796069200000; t += 997) times.push(t, t - 123_456);
  // Far past 9999 and before 1970, or not a whole millisecond: formatted whole.
  times.push(253402300800000, 8.64e15, -1, -62_000, 1.5);
  for (const ms of times) equal(isoTime(ms), new Date(ms).toISOString(), `at ${ms}`);
  throws(() => isoTime(8.64e15 + 1), RangeError);
});

Deno.test("nowIso is the current time as RFC 3339", () => {
  const before = Date.now();
  const text = nowIso();
  const after = Date.now();
  const ms = Date.parse(text);
  equal(ms >= before && ms <= after, true, `${text} between ${before} and ${after}`);
  equal(text, new Date(ms).toISOString());
});
