/**
 * What the client's two halves share: `_outbound.ts` sends requests and
 * registers them, `_inbound.ts` settles them, both over the same wire,
 * pending-request tables and job routes.
 *
 * @module
 */
import type { Connection } from "./_connection.ts";
import type { JobRoutes } from "./_job_routes.ts";
import type { Outstanding } from "./_outstanding.ts";

/** One session's shared state. */
export interface SessionParts {
  /** The session's wire. */
  readonly connection: Connection;
  /** The requests awaiting answers. */
  readonly outstanding: Outstanding;
  /** The streams following jobs, and the jobs that ended. */
  readonly routes: JobRoutes;
}
