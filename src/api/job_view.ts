/**
 * Jobs as the management API shows them: a summary for listings, the
 * detail of one job, and the keyset cursor of a listing.
 *
 * @module
 */
import { z } from "zod";
import type { ErrorPayload } from "../protocol/errors.ts";
import type { LiveJobView } from "../jobs/job_manager.ts";
import type { JobRecord } from "../store/records.ts";
import type { ListedJob } from "../store/job_index.ts";
import { invalid } from "./errors.ts";

/** A job in a listing. */
export interface JobSummary {
  /** The job id. */
  job_id: string;
  /** `name@version`. */
  agent: string;
  /** Who submitted it. */
  principal: string;
  /** Its state. */
  status: string;
  /** When it was accepted. */
  created_at: string;
  /** When it ended. */
  ended_at?: string;
  /** The delegating job, for a delegated one. */
  parent_job_id?: string;
  /** Its latest `progress` event, while it runs. */
  progress?: Record<string, unknown>;
  /** Per currency: the lease's budget and what is left, exact decimals. */
  budget?: Record<string, { limit: string; remaining: string }>;
  /** How it failed. */
  error?: { code: string; message: string };
}

/** One job in detail. */
export interface JobDetail extends JobSummary {
  /** The effective lease. */
  lease: JobRecord["lease"];
  /** Constraints as submitted. */
  lease_constraints?: JobRecord["lease_constraints"];
  /** Its trace id. */
  trace_id: string;
  /** The session that submitted it. */
  session_id: string;
  /** Its `max_runtime_sec`. */
  max_runtime_sec?: number;
  /** Its provisioned credentials: ids and profiles, never values. */
  credentials: Array<{ id: string; profile?: string; status: "active" }>;
}

/**
 * A job's summary.
 *
 * @param job its record, or what a listing shows of it
 * @param live what only the running process knows (latest progress), while it runs
 * @returns the summary
 */
export function jobSummary(job: ListedJob, live?: LiveJobView): JobSummary {
  const s: JobSummary = {
    job_id: job.job_id,
    agent: job.agent,
    principal: job.principal,
    status: job.status,
    created_at: job.created_at,
  };
  if (job.ended_at) s.ended_at = job.ended_at;
  if (job.parent_job_id) s.parent_job_id = job.parent_job_id;
  if (live?.progress) s.progress = live.progress;
  if (job.budget) {
    s.budget = Object.fromEntries(
      Object.entries(job.budget).map(([currency, limit]) => [currency, {
        limit: String(limit),
        remaining: job.budget_remaining?.[currency] ?? String(limit),
      }]),
    );
  }
  if (job.error) s.error = errorOf(job.error);
  return s;
}

/**
 * One job in detail.
 *
 * @param job its record
 * @param live what only the running process knows, while it runs
 * @returns the detail
 */
export function jobDetail(job: JobRecord, live?: LiveJobView): JobDetail {
  const d: JobDetail = {
    ...jobSummary(job, live),
    lease: job.lease,
    trace_id: job.trace_id,
    session_id: job.session_id,
    credentials: (live?.credentials ?? []).map((c) => ({ ...c, status: "active" })),
  };
  if (job.lease_constraints) d.lease_constraints = job.lease_constraints;
  if (job.max_runtime_sec) d.max_runtime_sec = job.max_runtime_sec;
  return d;
}

function errorOf(e: ErrorPayload): { code: string; message: string } {
  return { code: e.code, message: e.message };
}

/** What a listing's cursor holds: the last job's creation time and id. */
const CursorSchema = z.object({ m: z.number().int().nonnegative(), j: z.string().min(1) });

/** A position in a listing. */
export type Cursor = z.infer<typeof CursorSchema>;

/**
 * The cursor that resumes a listing after a job.
 *
 * @param job the last job of a page
 * @returns an opaque string
 */
export function encodeCursor(job: { created_ms: number; job_id: string }): string {
  return b64url(JSON.stringify({ m: job.created_ms, j: job.job_id } satisfies Cursor));
}

/**
 * Reads a cursor a client sent back.
 *
 * @param text the opaque string
 * @returns the position
 * @throws {ArcpError} `INVALID_REQUEST` when it is not a cursor this API made
 */
export function decodeCursor(text: string): Cursor {
  try {
    const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return CursorSchema.parse(JSON.parse(new TextDecoder().decode(bytes)));
  } catch {
    throw invalid("cursor: not a cursor this API returned", { cursor: text.slice(0, 100) });
  }
}

function b64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}
