/**
 * A message channel to one agent's worker, wherever that worker lives.
 *
 * @module
 */
import type { WorkerPermissions } from "./permissions.ts";
import type { HostMessage } from "./worker/wire.ts";

/** What launching a worker needs. */
export interface LaunchSpec {
  /** The job id (names the worker; never trusted from the worker). */
  jobId: string;
  /** The submitting principal. */
  principal: string;
  /** File URL of the agent module. */
  agentUrl: string;
  /** The worker's Deno permissions (`net` is the launcher's to set: see `egress`). */
  permissions: WorkerPermissions;
  /**
   * The lease's `net.fetch` globs. When there are any, the launcher starts
   * the job's egress proxy, grants the worker `net` for that proxy alone and
   * routes its `fetch` through it.
   */
  egress: readonly string[];
}

/** Receives what a worker does. */
export interface ChannelHandlers {
  /** A message the worker posted (unchecked). */
  message(msg: unknown): void;
  /**
   * The worker (or the process it lived in) died or was stopped.
   *
   * @param reason what happened, in words for the job's error
   * @param cap the limit it hit (`memory`, `event`, `result`, `output`, …), when one did
   */
  crash(reason: string, cap?: string): void;
}

/** A channel to one worker. */
export interface AgentChannel {
  /** Posts a message to the worker. */
  post(msg: HostMessage): void;
  /**
   * Ends the worker (a launcher with a process per job kills that process).
   *
   * @param forced the agent had not finished by itself, so it may be stuck in
   *   synchronous code that `Worker.terminate()` cannot interrupt (Deno 2.9)
   */
  kill(forced: boolean): void;
}

/** Starts workers. */
export interface AgentLauncher {
  /**
   * Starts a worker for one job.
   *
   * @param spec what to start
   * @param handlers where its messages and death go
   * @returns the channel
   */
  launch(spec: LaunchSpec, handlers: ChannelHandlers): AgentChannel;
  /** Stops every worker and process it started. */
  close(): Promise<void>;
}
