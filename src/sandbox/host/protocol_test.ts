import { equal } from "assert";
import { RSS_REPORT_STEP, rssDue } from "./protocol.ts";

const MiB = 1024 * 1024;
const CEILING = 640 * MiB;

Deno.test("rssDue: the first sample is reported, and a sample that moved less than the step is not", () => {
  equal(rssDue(60 * MiB, undefined, CEILING), true);
  equal(rssDue(60 * MiB + 8192, 60 * MiB, CEILING), false);
  equal(rssDue(60 * MiB - 8192, 60 * MiB, CEILING), false);
  equal(rssDue(60 * MiB + RSS_REPORT_STEP, 60 * MiB, CEILING), true);
  equal(rssDue(60 * MiB - RSS_REPORT_STEP, 60 * MiB, CEILING), true);
});

Deno.test("rssDue: every sample above the ceiling is reported, however little it moved", () => {
  equal(rssDue(CEILING + 1, CEILING, CEILING), true);
  equal(rssDue(CEILING + 1, CEILING + 1, CEILING), true);
  equal(rssDue(CEILING, CEILING - 1, CEILING), false);
});
