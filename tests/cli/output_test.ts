/** How `arcp submit` renders events and progress. */
import { equal } from "assert";
import { eventLine } from "../../src/cli/event_line.ts";
import { LiveLine, progressBar } from "../../src/cli/progress_bar.ts";

const ts = "2026-01-01T00:00:00Z";

Deno.test("eventLine says what matters for each reserved kind", () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ["log", { level: "warn", message: "disk\nlow" }, "log: [warn] disk low"],
    ["thought", { text: "hmm" }, "thought: hmm"],
    ["status", { phase: "running" }, "status: running"],
    ["status", { phase: "sleeping", message: "zzz" }, "status: sleeping (zzz)"],
    ["progress", { current: 2, total: 5, units: "ticks" }, "progress: 2/5 ticks"],
    ["progress", { current: 7, message: "files" }, "progress: 7 files"],
    ["metric", { name: "cost.usd", value: 0.5, unit: "USD" }, "metric: cost.usd = 0.5 USD"],
    ["tool_call", { tool: "grep", call_id: "c1", args: {} }, "tool_call: grep (c1)"],
    ["tool_result", { call_id: "c1", result: 3 }, "tool_result: c1 ok"],
    [
      "tool_result",
      { call_id: "c1", error: { code: "PERMISSION_DENIED", message: "no", retryable: false } },
      "tool_result: c1 failed: PERMISSION_DENIED: no",
    ],
    [
      "artifact_ref",
      { uri: "file:///r.txt", content_type: "text/plain", byte_size: 12 },
      "artifact_ref: file:///r.txt (text/plain, 12 bytes)",
    ],
    ["delegate", { delegate_id: "d1", agent: "echo", input: 1 }, "delegate: echo (d1)"],
    [
      "result_chunk",
      { result_id: "r1", chunk_seq: 0, data: "x", encoding: "utf8", more: false },
      "result_chunk: r1 #0 (last)",
    ],
    ["x-vendor.acme.ping", { a: 1 }, 'x-vendor.acme.ping: {"a":1}'],
    ["progress", { current: "lots" }, 'progress: {"current":"lots"}'],
  ];
  for (const [kind, body, line] of cases) equal(eventLine({ kind, ts, body }), line);
});

Deno.test("progressBar fills in proportion, and shows a count when the total is unknown", () => {
  equal(progressBar({ current: 0, total: 4 }, 8), "[--------] 0/4 0%");
  equal(progressBar({ current: 1, total: 4, units: "ticks" }, 8), "[##------] 1/4 ticks 25%");
  equal(progressBar({ current: 4, total: 4, message: "done" }, 8), "[########] 4/4 100% done");
  equal(progressBar({ current: 9, total: 4 }, 4), "[####] 9/4 100%");
  equal(progressBar({ current: 3, units: "files" }), "[3 files]");
});

Deno.test("LiveLine redraws its line in place and prints other lines above it", () => {
  let out = "";
  const line = new LiveLine((t) => out += t, () => 12);
  line.print("before");
  line.show("[#---] 1/4 and more");
  line.print("log: hi");
  line.show("[####] 4/4");
  line.finish();
  line.print("after");
  equal(
    out,
    "before\n" +
      "\r\x1b[2K[#---] 1/4 " +
      "\r\x1b[2Klog: hi\n[#---] 1/4 " +
      "\r\x1b[2K[####] 4/4" +
      "\n" +
      "after\n",
  );
});

Deno.test("LiveLine does not cut the line when the terminal reports no width", () => {
  let out = "";
  new LiveLine((t) => out += t, () => 0).show("[#---] 1/4 and more");
  equal(out, "\r\x1b[2K[#---] 1/4 and more");
});
