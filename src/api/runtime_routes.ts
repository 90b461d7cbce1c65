/**
 * `/v1/whoami`, `/v1/runtime` (the summary, with the nodes sharing the KV), `/v1/runtime/drain`,
 * `/v1/events` (the runtime's own event log) and `/v1/diagnostics`.
 *
 * @module
 */
import type { Hono } from "hono";
import { z } from "zod";
import { JOB_STATUSES } from "../protocol/messages.ts";
import type { ApiDeps } from "./deps.ts";
import type { ApiEnv } from "./jobs.ts";
import { requireAdmin } from "./auth.ts";
import { afterParam, limitParam, parseBody } from "./query.ts";
import { diagnose } from "./diagnostics.ts";

/** Runtime events per page by default. */
export const DEFAULT_RUNTIME_EVENTS_LIMIT = 100;
/** Most runtime events per page. */
export const MAX_RUNTIME_EVENTS_LIMIT = 1000;
/** Longest drain deadline an operator may ask for (s). */
const MAX_DRAIN_SEC = 24 * 3600;

/** The body of `POST /v1/runtime/drain`. */
const DrainBodySchema = z.object({
  deadline_sec: z.number().int().min(0).max(MAX_DRAIN_SEC).optional(),
}).strict();

/**
 * Adds the runtime routes.
 *
 * @param app the API's app
 * @param deps the runtime's parts
 * @param drainSec the drain deadline when the body names none (s)
 */
export function runtimeRoutes(app: Hono<ApiEnv>, deps: ApiDeps, drainSec: number): void {
  app.get("/whoami", (c) => {
    const { principal, admin } = c.get("caller");
    return c.json({ principal, admin });
  });

  app.get("/runtime", async (c) => {
    const byStatus: Record<string, number> = {};
    for (const status of JOB_STATUSES) byStatus[status] = 0;
    const live = deps.jobs.liveJobs();
    for (const { record } of live) byStatus[record.status]++;
    for (const [status, n] of Object.entries(deps.endedSinceStart())) {
      byStatus[status] = (byStatus[status] ?? 0) + n;
    }
    let attached = 0;
    let held = 0;
    for (const s of deps.sessions.all()) {
      held++;
      if (s.connected) attached++;
    }
    const nodes = await deps.jobs.listNodes();
    return c.json({
      name: deps.runtime.name,
      version: deps.runtime.version,
      node_id: deps.jobs.cluster.nodeId,
      nodes,
      started_at: new Date(deps.startedMs).toISOString(),
      uptime_sec: Math.floor((Date.now() - deps.startedMs) / 1000),
      sessions: { live: attached, held },
      jobs: { by_status: byStatus, live: live.length },
      sandbox: deps.sandbox(),
      limits: deps.limits,
      drain: deps.drain.status,
      storage: deps.store.health(),
    });
  });

  app.post("/runtime/drain", async (c) => {
    requireAdmin(c.get("caller"), "draining the runtime");
    const body = parseBody(await c.req.text(), DrainBodySchema);
    return c.json({ drain: deps.drain.start(body.deadline_sec ?? drainSec) }, 202);
  });

  app.get("/events", async (c) => {
    requireAdmin(c.get("caller"), "the runtime's event log");
    const q = c.req.query();
    const after = afterParam(q.after);
    const limit = limitParam(q.limit, DEFAULT_RUNTIME_EVENTS_LIMIT, MAX_RUNTIME_EVENTS_LIMIT);
    const { events, hasMore } = await deps.store.runtimeLog.read(after, limit);
    return c.json({ events, next_after: events.at(-1)?.index ?? after, has_more: hasMore });
  });

  app.get("/diagnostics", async (c) => {
    requireAdmin(c.get("caller"), "diagnostics");
    return c.json({ items: diagnose(deps, await deps.jobs.listNodes()) });
  });
}
