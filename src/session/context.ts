/**
 * What every connection shares: the runtime's identity, its sessions, jobs,
 * store and the hello's auth state. The composition root builds one; the
 * handshake and the routes read it.
 *
 * @module
 */
import type { JobManager } from "../jobs/job_manager.ts";
import type { Feature } from "../protocol/features.ts";
import type { AgentInventoryEntry } from "../protocol/messages.ts";
import type { Store } from "../store/store.ts";
import type { Logger } from "../logger.ts";
import type { Transport } from "../transport/transport.ts";
import type { AnonymousLimits, Authenticator, HelloThrottle } from "./auth.ts";
import type { SessionEvents } from "./operator_events.ts";
import type { SessionRegistry } from "./registry.ts";

/** What every connection shares. */
export interface ConnectionContext {
  /** Runtime name and version for the welcome. */
  runtime: { name: string; version: string };
  /** Features this runtime offers on a given connection. */
  features: (transport: Transport) => readonly Feature[];
  /** How long a new connection may go without a `session.hello` before it is closed (ms). */
  helloTimeoutMs: number;
  /** Heartbeat interval (seconds) when `heartbeat` is negotiated. */
  heartbeatSec: number;
  /** The agent inventory. */
  inventory: () => AgentInventoryEntry[];
  /** Who a hello's bearer token names. */
  auth: Authenticator;
  /** The anonymous scheme's caps; anonymous hellos are refused when unset. */
  anonymous?: AnonymousLimits;
  /** Failed-hello throttle. */
  throttle: HelloThrottle;
  /** Sessions. */
  sessions: SessionRegistry;
  /** Jobs. */
  jobs: JobManager;
  /** The store. */
  store: Store;
  /** Operator log. */
  log: Logger;
  /** Operator events: one log line and one counter each. */
  events: SessionEvents;
}
