/**
 * A minimal, valid job record for unit tests that need one without a
 * runtime.
 *
 * @module
 */
import type { JobRecord } from "../src/store/records.ts";

/**
 * A pending echo job of `alice`'s, accepted at one fixed instant.
 *
 * @param overrides fields to change (a job id, a status, a trace id)
 * @returns the record
 * @example
 * ```ts ignore
 * const running = jobRecord({ job_id: "job_2", status: "running" });
 * ```
 */
export function jobRecord(overrides: Partial<JobRecord> = {}): JobRecord {
  return {
    job_id: "job_1",
    principal: "alice",
    session_id: "sess_1",
    agent: "echo@1.0.0",
    status: "pending",
    lease: {},
    trace_id: "0".repeat(32),
    created_at: "2026-12-02T18:00:00.000Z",
    created_ms: 0,
    accepted_at: "2026-12-02T18:00:00.000Z",
    last_event_seq: 0,
    log_length: 0,
    ...overrides,
  };
}
