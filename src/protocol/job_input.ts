/**
 * This runtime's vendor extension for input to running jobs and their
 * transcripts (feature {@linkcode INPUT_FEATURE}). A session that did not
 * negotiate the feature never sees any of it: its messages are unknown
 * types there, and the input events are not staged for it.
 *
 * - `x-arcp-deno.job.input {job_id, content, end?}` (client → runtime, from
 *   the session that submitted the job) → `x-arcp-deno.job.input_accepted
 *   {request_id, job_id, input_seq}`. The input is recorded in the job's
 *   history as a `job.event` of kind {@linkcode INPUT_KIND} before the
 *   answer goes out.
 * - `x-arcp-deno.job.transcript {job_id, after?, limit?}` →
 *   `x-arcp-deno.job.transcript_page {request_id, job_id, status, items,
 *   next_after}`: the job's history (inputs and outputs in order) from a
 *   cursor.
 * - A refused request of either type → `x-arcp-deno.refused {request_id,
 *   code, message, retryable, details?}`, to the requester alone (not a
 *   `session.error`, which fails every pending request of a reference client).
 *
 * The request envelope's `id` is echoed as `request_id`, as `session.jobs` does.
 *
 * @module
 */
import { z } from "zod";
import { ErrorPayloadSchema } from "./errors.ts";
import { VENDOR_FEATURES } from "./features.ts";
import { JobStatusSchema } from "./messages.ts";

/** The vendor feature that carries input to running jobs and transcripts. */
export const INPUT_FEATURE: typeof VENDOR_FEATURES[0] = VENDOR_FEATURES[0];

/** Client → runtime: input for a running job. */
export const INPUT_TYPE = "x-arcp-deno.job.input";

/** Runtime → client: the input was recorded and queued for the agent. */
export const INPUT_ACCEPTED_TYPE = "x-arcp-deno.job.input_accepted";

/** Client → runtime: read a job's transcript. */
export const TRANSCRIPT_TYPE = "x-arcp-deno.job.transcript";

/** Runtime → client: one page of a transcript. */
export const TRANSCRIPT_PAGE_TYPE = "x-arcp-deno.job.transcript_page";

/** Runtime → client: a vendor request was refused. */
export const REFUSED_TYPE = "x-arcp-deno.refused";

/**
 * The event kind an input is recorded under in the job's history (a vendor
 * kind, ARCP §5; agents may not emit it).
 */
export const INPUT_KIND = "x-vendor.arcp-deno.input";

/** Most transcript items one page holds. */
export const MAX_TRANSCRIPT_PAGE = 500;

const jobId = z.string().min(1).max(256);

/** `x-arcp-deno.job.input` payload. */
export const InputSchema = z.object({
  job_id: jobId,
  /** Any JSON value; `null` is an input too. Absent only with `end`. */
  content: z.unknown().optional(),
  /** No input follows this one; the agent's `ctx.input()` then resolves `undefined`. */
  end: z.boolean().optional(),
}).refine((p) => p.content !== undefined || p.end === true, {
  message: "content: required unless end is true",
  path: ["content"],
});

/** An `x-arcp-deno.job.input` payload. */
export type Input = z.infer<typeof InputSchema>;

/** `x-arcp-deno.job.input_accepted` payload. */
export const InputAcceptedSchema = z.object({
  request_id: z.string(),
  job_id: z.string(),
  /** 1 for the job's first input, then up by one. */
  input_seq: z.number().int().positive(),
});

/** An `x-arcp-deno.job.input_accepted` payload. */
export type InputAccepted = z.infer<typeof InputAcceptedSchema>;

/** Body of an {@linkcode INPUT_KIND} event. */
export const InputEventBodySchema = z.object({
  input_seq: z.number().int().positive(),
  content: z.unknown().optional(),
  end: z.literal(true).optional(),
});

/** The body of an {@linkcode INPUT_KIND} event. */
export type InputEventBody = z.infer<typeof InputEventBodySchema>;

/** `x-arcp-deno.job.transcript` payload. */
export const TranscriptSchema = z.object({
  job_id: jobId,
  /** Items with an index above this; absent for the start. */
  after: z.number().int().min(-1).optional(),
  /** Items per page, 1–500 (default 100). */
  limit: z.number().int().min(1).max(MAX_TRANSCRIPT_PAGE).optional(),
});

/** An `x-arcp-deno.job.transcript` payload. */
export type Transcript = z.infer<typeof TranscriptSchema>;

/** One transcript item: an envelope of the job's history, in order. */
export const TranscriptItemSchema = z.object({
  /** Position in the job's history: the cursor. */
  index: z.number().int().nonnegative(),
  type: z.enum(["job.event", "job.result", "job.error"]),
  payload: z.record(z.string(), z.unknown()),
});

/** One transcript item. */
export type TranscriptItem = z.infer<typeof TranscriptItemSchema>;

/** `x-arcp-deno.job.transcript_page` payload. */
export const TranscriptPageSchema = z.object({
  request_id: z.string(),
  job_id: z.string(),
  /** The job's status when the page was read. */
  status: JobStatusSchema,
  items: z.array(TranscriptItemSchema),
  /**
   * Pass as `after` for the next page; `null` once the job has ended and
   * this page reached the end of its history.
   */
  next_after: z.number().int().min(-1).nullable(),
});

/** An `x-arcp-deno.job.transcript_page` payload. */
export type TranscriptPage = z.infer<typeof TranscriptPageSchema>;

/** `x-arcp-deno.refused` payload: an ARCP error payload naming the request. */
export const RefusedSchema = ErrorPayloadSchema.extend({ request_id: z.string() });

/** An `x-arcp-deno.refused` payload. */
export type Refused = z.infer<typeof RefusedSchema>;
