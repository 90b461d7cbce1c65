import { equal } from "assert";
import { encodeEnvelope, EnvelopeEncoding, type SharedEnvelope } from "./encode.ts";

const CASES: Array<SharedEnvelope<"job.event" | "job.result" | "job.error">> = [
  {
    type: "job.event",
    job_id: "job_01J0000000000000000000000",
    trace_id: "0123456789abcdef0123456789abcdef",
    payload: { kind: "progress", ts: "2026-01-01T00:00:00.000Z", body: { current: 1, total: 2 } },
  },
  {
    type: "job.event",
    job_id: "job_1",
    payload: {
      kind: "log",
      ts: "2026-01-01T00:00:00Z",
      body: { level: "info", message: 'quotes " backslash \\ newline \n ünïcödé 🚀 \u2028' },
    },
  },
  { type: "job.result", job_id: "job_2", payload: { final_status: "success", result: null } },
  {
    type: "job.error",
    trace_id: "ffffffffffffffffffffffffffffffff",
    payload: {
      final_status: "error",
      code: "INTERNAL_ERROR",
      message: "x",
      retryable: false,
    },
  },
];

Deno.test("a frame spliced from a shared encoding is byte for byte what encodeEnvelope makes", () => {
  // Runs of one job and changes between jobs, types and traces alike (the head is reused in a run).
  for (const shared of [...CASES, CASES[0], CASES[0], ...CASES, CASES[1]]) {
    const enc = new EnvelopeEncoding(shared);
    for (
      const [id, sessionId, seq] of [["01JA", "sess_a", 1], ["01JB", "sess_b", 123456]] as const
    ) {
      const expected = encodeEnvelope({ ...shared, id, session_id: sessionId, event_seq: seq });
      equal(enc.frame(id, sessionId, seq), expected);
      // The payload's JSON handed over by a caller that has it is used as it is.
      const given = new EnvelopeEncoding(shared, JSON.stringify(shared.payload));
      equal(given.frame(id, sessionId, seq), expected);
    }
  }
});
