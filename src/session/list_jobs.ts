/**
 * `session.list_jobs`: filters, keyset cursors and the listing entry shape.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import type { JobEntry, Jobs, ListJobs } from "../protocol/messages.ts";
import { parseUtc } from "../protocol/time.ts";
import type { ListedJob } from "../store/job_index.ts";
import type { Store } from "../store/store.ts";

/** Page size when the request names none. */
export const DEFAULT_LIST_LIMIT = 100;

/**
 * Encodes a listing position as an opaque cursor.
 *
 * @param pos creation time and job id of the last job returned
 * @returns the cursor
 */
export function encodeCursor(pos: { createdMs: number; jobId: string }): string {
  return btoa(JSON.stringify([pos.createdMs, pos.jobId])).replaceAll("=", "");
}

/**
 * Decodes a cursor.
 *
 * @param cursor what {@linkcode encodeCursor} returned
 * @returns the position
 * @throws {ArcpError} `INVALID_REQUEST` when it is not one of ours
 */
export function decodeCursor(cursor: string): { createdMs: number; jobId: string } {
  try {
    const [createdMs, jobId] = JSON.parse(atob(cursor));
    if (Number.isSafeInteger(createdMs) && typeof jobId === "string" && jobId.length <= 64) {
      return { createdMs, jobId };
    }
  } catch {
    // fall through to the error below
  }
  throw new ArcpError("INVALID_REQUEST", "payload.cursor: not a cursor this runtime issued");
}

function boundMs(text: string | undefined, field: string): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseUtc(text) ?? Date.parse(text);
  if (!Number.isFinite(ms)) {
    throw new ArcpError(
      "INVALID_REQUEST",
      `payload.filter.${field}: must be an RFC 3339 timestamp`,
    );
  }
  return ms;
}

/**
 * A job as `session.jobs` lists it.
 *
 * @param job the record
 * @returns the entry
 */
export function jobEntry(job: ListedJob): JobEntry {
  return {
    job_id: job.job_id,
    agent: job.agent,
    status: job.status,
    lease: job.lease,
    parent_job_id: job.parent_job_id ?? null,
    created_at: job.created_at,
    trace_id: job.trace_id,
    last_event_seq: job.last_event_seq,
  };
}

/**
 * Answers a listing for one principal.
 *
 * @param store the store
 * @param principal whose jobs
 * @param requestId the request envelope's id
 * @param req the request payload
 * @returns the `session.jobs` payload
 */
export async function listJobs(
  store: Store,
  principal: string,
  requestId: string,
  req: ListJobs,
): Promise<Jobs> {
  const filter = req.filter ?? {};
  const page = await store.listJobs(principal, {
    statuses: filter.status,
    agent: filter.agent,
    createdAfterMs: boundMs(filter.created_after, "created_after"),
    createdBeforeMs: boundMs(filter.created_before, "created_before"),
    after: req.cursor ? decodeCursor(req.cursor) : undefined,
    limit: req.limit ?? DEFAULT_LIST_LIMIT,
  });
  return {
    request_id: requestId,
    jobs: page.jobs.map(jobEntry),
    next_cursor: page.next ? encodeCursor(page.next) : null,
  };
}
