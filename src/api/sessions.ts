/**
 * `/v1/sessions`: the sessions this process holds (attached, or detached
 * within their resume window); a principal sees its own, an admin all.
 *
 * @module
 */
import type { Hono } from "hono";
import type { ApiDeps } from "./deps.ts";
import type { ApiEnv } from "./jobs.ts";

/** A session as operators see it. */
export interface SessionView {
  /** Its id. */
  session_id: string;
  /** Its principal. */
  principal: string;
  /** When it was opened. */
  opened_at: string;
  /** Whether a connection is attached. */
  state: "attached" | "detached";
  /** Its jobs live now. */
  live_jobs: number;
}

/**
 * Adds the session routes.
 *
 * @param app the API's app
 * @param deps the runtime's parts
 */
export function sessionRoutes(app: Hono<ApiEnv>, deps: ApiDeps): void {
  app.get("/sessions", (c) => {
    const caller = c.get("caller");
    const liveJobs = new Map<string, number>();
    for (const { record } of deps.jobs.liveJobs()) {
      liveJobs.set(record.session_id, (liveJobs.get(record.session_id) ?? 0) + 1);
    }
    const sessions: SessionView[] = [];
    for (const s of deps.sessions.all()) {
      if (!caller.admin && s.principal !== caller.principal) continue;
      sessions.push({
        session_id: s.sessionId,
        principal: s.principal,
        opened_at: s.record.created_at,
        state: s.connected ? "attached" : "detached",
        live_jobs: liveJobs.get(s.sessionId) ?? 0,
      });
    }
    return c.json({ sessions });
  });
}
