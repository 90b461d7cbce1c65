/**
 * The client's side of this runtime's vendor feature `x-arcp-deno.input`:
 * input to a running job and its transcript. The types are written out
 * (not inferred from the protocol's schemas) because the public API exports
 * them; `_inbound.ts` checks each answer against the protocol's schema.
 *
 * @module
 */
import type { JobStatus } from "./payloads.ts";

/** The answer to an input: it is recorded in the job's history and queued for the agent. */
export interface InputReceipt {
  /** The job. */
  job_id: string;
  /** 1 for the job's first input, then up by one. */
  input_seq: number;
}

/** Options of a send. */
export interface SendInputOptions {
  /** No input follows this one: the agent's `ctx.inputs()` ends after it. */
  end?: boolean;
}

/** Options of a transcript read. */
export interface TranscriptRequest {
  /** Items with an index above this (a page's `next_after`); absent for the start. */
  after?: number;
  /** Items per page, 1–500 (default 100). */
  limit?: number;
}

/** One transcript item: an envelope of the job's history (an input is a `job.event` of kind `x-vendor.arcp-deno.input`). */
export interface TranscriptItem {
  /** Position in the job's history: the cursor. */
  index: number;
  /** The envelope type. */
  type: "job.event" | "job.result" | "job.error";
  /** Its payload. */
  payload: Record<string, unknown>;
}

/** One page of a transcript. */
export interface TranscriptPagePayload {
  /** The request's envelope id. */
  request_id: string;
  /** The job. */
  job_id: string;
  /** The job's status when the page was read. */
  status: JobStatus;
  /** The items, in order. */
  items: TranscriptItem[];
  /** Pass as `after` for the next page; `null` once the job has ended and its history was read to the end. */
  next_after: number | null;
}
