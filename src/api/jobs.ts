/**
 * `/v1/jobs`: listings with filters and a keyset cursor, one job, its
 * events (JSON pages or Server-Sent Events) and operator cancel. A
 * principal sees its own jobs; an admin sees all. A job the caller may not
 * see is answered as unknown (404), so ids reveal nothing.
 *
 * @module
 */
import type { Hono } from "hono";
import { z } from "zod";
import { ArcpError } from "../protocol/errors.ts";
import { JOB_STATUSES, type JobStatus, TERMINAL_STATUSES } from "../protocol/messages.ts";
import type { JobRecord } from "../store/records.ts";
import type { ListedJob } from "../store/job_index.ts";
import { bareAgent } from "../store/job_index.ts";
import type { ApiDeps } from "./deps.ts";
import type { Caller } from "./auth.ts";
import { errorResponse, invalid } from "./errors.ts";
import { decodeCursor, encodeCursor, jobDetail, jobSummary } from "./job_view.ts";
import { afterParam, limitParam, parseBody } from "./query.ts";
import { eventStream, readEvents } from "./job_events.ts";

/** Jobs per page by default. */
export const DEFAULT_JOBS_LIMIT = 50;
/** Most jobs per page. */
export const MAX_JOBS_LIMIT = 500;
/** Events per page by default. */
export const DEFAULT_EVENTS_LIMIT = 100;
/** Most events per page. */
export const MAX_EVENTS_LIMIT = 1000;
/** Records an admin's listing across every principal reads at most per page. */
const MAX_SCAN = 5000;

/** The body of `POST /v1/jobs/:id/cancel`. */
const CancelBodySchema = z.object({ reason: z.string().max(1000).optional() }).strict();

/** The variables the API's middleware sets. */
export type ApiEnv = { Bindings: { peer: string }; Variables: { caller: Caller } };

/**
 * Adds the job routes.
 *
 * @param app the API's app (mounted at `/v1`)
 * @param deps the runtime's parts
 * @param closing aborted when the runtime closes: event streams end
 */
export function jobRoutes(app: Hono<ApiEnv>, deps: ApiDeps, closing: AbortSignal): void {
  const { store, jobs } = deps;

  /** A job the caller may see, read from KV, or 404. */
  const visibleJob = async (caller: Caller, jobId: string): Promise<JobRecord> => {
    const job = await store.getJob(jobId);
    if (!job || (!caller.admin && job.principal !== caller.principal)) {
      throw new ArcpError("JOB_NOT_FOUND", `no job ${jobId}`, { job_id: jobId });
    }
    return job;
  };

  app.get("/jobs", async (c) => {
    const caller = c.get("caller");
    const q = c.req.query();
    const limit = limitParam(q.limit, DEFAULT_JOBS_LIMIT, MAX_JOBS_LIMIT);
    const statuses = statusesParam(q.status);
    const agent = q.agent || undefined;
    const cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
    let principal: string | undefined = q.principal || undefined;
    if (principal !== undefined && principal !== caller.principal && !caller.admin) {
      throw new ArcpError("PERMISSION_DENIED", "only admins may list another principal's jobs", {
        principal,
      });
    }
    if (!caller.admin) principal = caller.principal;
    let page: ListedJob[];
    let next: string | null = null;
    if (principal !== undefined) {
      const result = await store.listJobs(principal, {
        statuses,
        agent,
        limit,
        newestFirst: true,
        after: cursor && { createdMs: cursor.m, jobId: cursor.j },
      });
      page = result.jobs;
      if (result.next) {
        next = encodeCursor({ created_ms: result.next.createdMs, job_id: result.next.jobId });
      }
    } else {
      const wanted = statuses && new Set<JobStatus>(statuses);
      const result = await store.listAllJobs({
        match: (job) =>
          (!wanted || wanted.has(job.status)) &&
          (agent === undefined ||
            (agent.includes("@") ? job.agent === agent : bareAgent(job.agent) === agent)),
        beforeJobId: cursor?.j,
        limit,
        maxScan: MAX_SCAN,
      });
      page = result.jobs;
      // Only the id resumes this listing; the time keeps the cursor's one shape.
      if (result.next) next = encodeCursor({ created_ms: 0, job_id: result.next });
    }
    return c.json({
      jobs: page.map((job) => {
        const live = jobs.liveJob(job.job_id);
        return jobSummary(live?.record ?? job, live);
      }),
      next_cursor: next,
    });
  });

  app.get("/jobs/:id", async (c) => {
    const job = await visibleJob(c.get("caller"), c.req.param("id"));
    const live = jobs.liveJob(job.job_id);
    return c.json({ job: jobDetail(live?.record ?? job, live) });
  });

  app.get("/jobs/:id/events", async (c) => {
    const job = await visibleJob(c.get("caller"), c.req.param("id"));
    const q = c.req.query();
    if ((c.req.header("accept") ?? "").includes("text/event-stream")) {
      const after = q.after !== undefined
        ? afterParam(q.after)
        : afterParam(c.req.header("last-event-id"), "Last-Event-ID");
      return new Response(eventStream(store, job, after, closing), {
        headers: {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache",
          "x-accel-buffering": "no",
        },
      });
    }
    const limit = limitParam(q.limit, DEFAULT_EVENTS_LIMIT, MAX_EVENTS_LIMIT);
    return c.json(await readEvents(store, job, afterParam(q.after), limit));
  });

  app.post("/jobs/:id/cancel", async (c) => {
    const caller = c.get("caller");
    const job = await visibleJob(caller, c.req.param("id"));
    const body = parseBody(await c.req.text(), CancelBodySchema);
    const after = await jobs.cancelAs(
      job.job_id,
      { actor: caller.principal, ...(caller.admin ? { admin: true } : {}) },
      body.reason ?? `cancelled by ${caller.principal}`,
    );
    if (TERMINAL_STATUSES.has(after.status)) {
      return errorResponse(
        invalid(`job ${job.job_id} has already ended (${after.status})`, {
          job_id: job.job_id,
          status: after.status,
        }),
        409,
      );
    }
    return c.json({ job_id: job.job_id, status: after.status }, 202);
  });
}

/**
 * The `status` filter: one status or several, comma-separated.
 *
 * @param text the parameter
 * @returns the statuses, or undefined for all
 * @throws {ArcpError} `INVALID_REQUEST` naming an unknown status
 */
function statusesParam(text: string | undefined): JobStatus[] | undefined {
  if (!text) return undefined;
  const list = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const s of list) {
    if (!(JOB_STATUSES as readonly string[]).includes(s)) {
      throw invalid(`status: unknown status ${JSON.stringify(s)}`, { allowed: [...JOB_STATUSES] });
    }
  }
  return list as JobStatus[];
}
