/**
 * The management API under `/v1`: what operators (and the dashboard) read
 * and do over HTTP. Every request carries `Authorization: Bearer <token>`,
 * verified as `session.hello` verifies it; a principal sees its own jobs
 * and sessions, an admin sees everything and alone may drain the runtime or
 * read its event log and diagnostics. Errors are JSON `{error: {code,
 * message, details?}}` with an ARCP code.
 *
 * @example
 * ```ts ignore
 * import { managementApi } from "./mod.ts";
 * const api = managementApi(deps, { drainSec: 30 });
 * const res = await api.fetch(new Request("http://x/v1/whoami", { headers: { authorization: "Bearer t" } }));
 * ```
 *
 * @module
 */
import { Hono } from "hono";
import type { ApiDeps } from "./deps.ts";
import { callerOf } from "./auth.ts";
import { errorResponse } from "./errors.ts";
import { type ApiEnv, jobRoutes } from "./jobs.ts";
import { sessionRoutes } from "./sessions.ts";
import { runtimeRoutes } from "./runtime_routes.ts";
import { ArcpError } from "../protocol/errors.ts";
import { DEFAULT_DRAIN_SEC } from "../jobs/drain.ts";

export type { ApiDeps, Deployment, HostView, SandboxView } from "./deps.ts";
export type { Authenticate, Caller, OnAuthFailure } from "./auth.ts";
export type { Diagnostic } from "./diagnostics.ts";
export type { JobDetail, JobSummary } from "./job_view.ts";
export type { JobEventItem, JobEventPage } from "./job_events.ts";
export type { SessionView } from "./sessions.ts";
export { MAX_EVENTS_LIMIT, MAX_JOBS_LIMIT } from "./jobs.ts";

/** Options of {@linkcode managementApi}. */
export interface ApiOptions {
  /** The drain deadline when a drain request names none (s); default 30. */
  drainSec?: number;
}

/** The management API. */
export interface ManagementApi {
  /**
   * Answers a request under `/v1`.
   *
   * @param req the request
   * @param peer the peer's address (the tarpit of failed tokens is per address)
   * @returns the answer
   */
  fetch(req: Request, peer?: string): Response | Promise<Response>;
  /** Ends every open event stream (the runtime closes). */
  close(): void;
}

/**
 * Builds the management API.
 *
 * @param deps the runtime's parts
 * @param options the default drain deadline
 * @returns the API
 */
export function managementApi(deps: ApiDeps, options: ApiOptions = {}): ManagementApi {
  const closing = new AbortController();
  const app = new Hono<ApiEnv>().basePath("/v1");
  app.onError((err) => errorResponse(err));
  app.use("*", async (c, next) => {
    const peer = c.env.peer;
    const failed = () => deps.authFailed?.(peer) ?? Promise.resolve();
    c.set(
      "caller",
      await callerOf(c.req.header("authorization"), deps.authenticate, deps.admins, failed),
    );
    await next();
  });
  runtimeRoutes(app, deps, options.drainSec ?? DEFAULT_DRAIN_SEC);
  jobRoutes(app, deps, closing.signal);
  sessionRoutes(app, deps);
  app.notFound((c) =>
    errorResponse(
      new ArcpError(
        "INVALID_REQUEST",
        `no such endpoint: ${c.req.method} ${new URL(c.req.url).pathname}`,
      ),
      404,
    )
  );
  return {
    fetch: (req, peer = "unknown") => app.fetch(req, { peer }),
    close: () => closing.abort(),
  };
}
