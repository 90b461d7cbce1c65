/**
 * What the management API reads and acts on: the runtime's parts, as the
 * composition root hands them over.
 *
 * @module
 */
import type { Drain } from "../jobs/drain.ts";
import type { JobManager } from "../jobs/job_manager.ts";
import type { SessionRegistry } from "../session/registry.ts";
import type { Store } from "../store/store.ts";
import type { Authenticate, OnAuthFailure } from "./auth.ts";

/** One sandbox process, as operators see it. */
export interface HostView {
  /** Its process id. */
  pid: number;
  /** The resident set it last reported (bytes). */
  rss_bytes?: number;
  /** Jobs it serves now. */
  jobs: number;
}

/** Where agents run, as operators see it. */
export interface SandboxView {
  /** `process` (sandbox processes), `worker` (workers in the runtime) or `custom`. */
  mode: "process" | "worker" | "custom";
  /** Sandbox processes alive (none in `worker` mode). */
  hosts: HostView[];
  /** Processes kept ready for jobs. */
  warm: number;
  /** Memory ceiling of each sandbox process, MiB (process mode). */
  memory_mb?: number;
}

/** How the runtime is reached and secured, for the diagnostics. */
export interface Deployment {
  /** The interface it listens on, when it listens. */
  host?: string;
  /** Whether it serves TLS. */
  tls?: boolean;
  /** Whether its only token was generated at start (development). */
  generatedToken?: boolean;
}

/** What the management API runs with. */
export interface ApiDeps {
  /** Verifies bearer tokens, as `session.hello` does. */
  authenticate: Authenticate;
  /** Holds back the answer to a bad token (the failed-hello tarpit). */
  authFailed?: OnAuthFailure;
  /** Principals that see and may act on everything. */
  admins: ReadonlySet<string>;
  /** Name and version. */
  runtime: { name: string; version: string };
  /** When the runtime started (epoch ms). */
  startedMs: number;
  /** KV, for jobs, their histories and the runtime's event log. */
  store: Store;
  /** The KV file (`:memory:` for none). */
  kvPath: string;
  /** The jobs. */
  jobs: JobManager;
  /** The sessions. */
  sessions: SessionRegistry;
  /** The drain. */
  drain: Drain;
  /** Jobs ended since start, by status. */
  endedSinceStart: () => Record<string, number>;
  /** Where agents run. */
  sandbox: () => SandboxView;
  /** The limits in force. */
  limits: Record<string, unknown>;
  /** Credential provisioning: the provisioner's name and whether it is offered without TLS. */
  credentials?: { provisioner: string; allowInsecure: boolean };
  /** How the runtime is reached. */
  deployment: Deployment;
}
