/**
 * The interface the jobs layer runs agents through. Where agents actually
 * run (a worker in this process, or a worker inside a supervised sandbox
 * host process) is the sandbox's business. The result check is here too,
 * because the jobs layer applies it to what host-side tools return.
 *
 * @module
 */
import type { ArcpError } from "../protocol/errors.ts";
import type { Lease } from "../protocol/lease.ts";
import type { WireCredential } from "./worker/wire.ts";

export { checkResult } from "./result_check.ts";

/**
 * How an agent's workers are shared between jobs, from its `reuse` and
 * `concurrency` options; absent, each job gets a fresh worker.
 */
export interface Sharing {
  /** Jobs one worker runs at once (1 unless the agent asked for more). */
  concurrency: number;
  /** Jobs one worker serves in all before it retires. */
  maxJobs: number;
  /** Seconds a worker may sit without a job before it retires. */
  idleSec: number;
}

/** An agent version that shares its workers, as {@linkcode Sandbox.expect} hears of it. */
export interface SharingAgent {
  /** File URL of its module. */
  url: string;
  /** How it shares its workers. */
  sharing: Sharing;
}

/** Defaults of an agent's `reuse` options. */
export const DEFAULT_REUSE: { maxJobs: number; idleSec: number } = {
  maxJobs: 1000,
  idleSec: 60,
};

/** What the sandbox needs to start a job. */
export interface SandboxJob {
  /** The job id. */
  jobId: string;
  /** Who submitted it. */
  principal: string;
  /** The job's trace id. */
  traceId: string;
  /** The job's span id in that trace, for the `traceparent` of the agent's fetches. */
  spanId?: string;
  /** File URL of the agent module. */
  agentUrl: string;
  /** The job's input. */
  input: unknown;
  /** The effective lease. */
  lease: Lease;
  /** How the agent's workers are shared; absent for a fresh worker per job. */
  sharing?: Sharing;
  /**
   * The job's provisioned credentials: delivered to its worker after
   * `start`, and their endpoints added to its egress globs.
   */
  credentials?: WireCredential[];
}

/**
 * An event as the supervisor passes it on: its kind, its body as the agent
 * sent it, and the body's JSON when the check already serialized it.
 */
export type AgentEvent = readonly [kind: string, body: Record<string, unknown>, json?: string];

/** How a running agent reports back. Calls arrive in the order the agent made them. */
export interface SandboxListener {
  /**
   * Checked events, in order (one message of the worker's); the promise
   * settles once the runtime has taken them all.
   */
  onEvents(events: AgentEvent[]): Promise<void>;
  /**
   * A request the agent makes of the runtime (`authorize`, `tool`); the
   * promise rejects with an ArcpError when the lease refuses it.
   */
  onCall(op: string, args: Record<string, unknown>): Promise<unknown>;
  /** One piece of the agent's streamed result; settles once the runtime has taken it. */
  onChunk(data: string, encoding: "utf8" | "base64"): Promise<void>;
  /** The agent closed its streamed result. */
  onChunkEnd(): void;
  /**
   * The agent returned.
   *
   * @param value what it returned
   * @returns optionally, a promise that settles once the outcome is out
   *   (committed and sent); the worker's process is readied for the next job
   *   only after it, off the result's path
   */
  onResult(value: unknown): void | Promise<void>;
  /** The agent failed, stopped beating, or broke the sandbox protocol. */
  onError(error: ArcpError): void;
}

/** A running agent. */
export interface AgentRun {
  /** Asks the agent to stop (aborts `ctx.signal`). */
  abort(reason: string): void;
  /** Ends the agent at once. */
  kill(): void;
  /**
   * Replaces the credentials the agent holds (a rotation; an empty list
   * when they were revoked before the job's end).
   *
   * @param credentials the current list
   */
  credentials(credentials: WireCredential[]): void;
  /**
   * Whether a worker was ready for the job when it started (its agent
   * loaded, nothing else running in it), so the job ran at once; false when
   * it waits for a worker still loading or for a place in the queue.
   */
  readonly warm: boolean;
}

/** Something that runs agents. */
export interface Sandbox {
  /**
   * Refuses a lease the sandbox could not honour without reaching the
   * runtime's own state or listeners. Called at submit (and for every
   * delegated lease) before anything is accepted, so such a lease never
   * becomes a job with a silently empty grant.
   *
   * @param lease the requested lease
   * @throws {ArcpError} `PERMISSION_DENIED` naming the pattern, what it would reach and why
   */
  checkLease(lease: Lease): void;
  /**
   * Refuses a job the sandbox could not start soon: checked at submit,
   * before anything is accepted, so overload is refused at once instead of
   * accepted and left to wait. A sandbox without a queue may leave it out.
   *
   * @param agent whether the agent shares its workers
   * @throws {ArcpError} retryable `INTERNAL_ERROR` with `details.cap: "sandbox_busy"`
   */
  checkCapacity?(agent: { sharing?: Sharing }): void;
  /**
   * Hears that a principal opened a session: its first job of an agent that
   * shares workers will need a worker of its own, which the sandbox may
   * ready ahead (a sandbox without processes may leave it out).
   *
   * @param principal who opened it
   * @param agents the agents that share workers (their default versions),
   *   whose workers its first jobs may need
   */
  expect?(principal: string, agents: readonly SharingAgent[]): void;
  /**
   * Starts one job's agent.
   *
   * @param job what to run
   * @param listener where its events and outcome go
   * @returns a handle to stop it
   * @throws {ArcpError} when the job cannot be run safely (e.g. `PERMISSION_DENIED`)
   */
  start(job: SandboxJob, listener: SandboxListener): Promise<AgentRun>;
  /** Stops everything it runs. */
  close(): Promise<void>;
}
