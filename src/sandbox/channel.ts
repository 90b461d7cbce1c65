/**
 * A message channel to one agent's worker, wherever that worker lives.
 *
 * @module
 */
import type { WorkerPermissions } from "./permissions.ts";
import type { JobMessage } from "./worker/wire.ts";
import type { Sharing } from "./sandbox.ts";

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
  /** How the agent's workers are shared between jobs; absent for a fresh worker per job. */
  sharing?: Sharing;
}

/** What a worker readied ahead for a sharing agent starts with, and how it is shared. */
export interface AheadTemplate {
  /** File URL of the agent module. */
  agentUrl: string;
  /** The worker's Deno permissions. */
  permissions: WorkerPermissions;
  /** The lease's `net.fetch` globs (see {@linkcode LaunchSpec.egress}). */
  egress: readonly string[];
  /** How the agent shares its workers. */
  sharing: Sharing;
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
  /**
   * The worker's event loop last ran at `at` (ms since the epoch): it was
   * ready (loaded and beating) when the job was given to it, or became
   * ready after. The job's liveness is judged from then on, without the
   * grace a worker still loading gets.
   */
  alive?(at: number): void;
}

/**
 * How a job left its worker: `done` (it returned a result), `failed` (the
 * agent failed by itself: it threw, exited or broke a cap) or `forced` (the
 * runtime ended it while it ran: a cancel past its grace, a timeout, a lost
 * heartbeat). Only `done` leaves a shared worker fit for another job.
 */
export type JobExit = "done" | "failed" | "forced";

/** A channel to one job in one worker. */
export interface AgentChannel {
  /**
   * Posts a message about the job to its worker; the channel names the
   * job's slot. A job still waiting for a worker keeps its messages, in
   * order, until it has one.
   */
  post(msg: JobMessage): void;
  /**
   * Ends the job's use of the worker. A fresh worker (the default) goes with
   * it, process and all; a shared one goes on serving other jobs unless the
   * job did not end `done`, which retires it.
   *
   * @param how how the job ended
   * @param delivered for a job that ended `done`, settles once its outcome
   *   is out (committed and sent): work that readies its process for the next
   *   job waits for it, so it does not compete with the result for the CPU
   */
  end(how: JobExit, delivered?: Promise<unknown>): void;
}

/** Starts workers. */
export interface AgentLauncher {
  /**
   * Starts a job in a worker: a fresh one, or for an agent with `sharing`, a
   * worker of the identical key that has room.
   *
   * @param spec what to start
   * @param handlers where its messages and death go
   * @returns the channel
   */
  launch(spec: LaunchSpec, handlers: ChannelHandlers): AgentChannel;
  /**
   * Why a job of this agent submitted now could not get a worker soon
   * enough to be worth accepting, if so (a launcher without a queue never
   * refuses).
   *
   * @param agent whether the agent shares its workers
   * @returns the reason, or undefined to accept
   */
  refusal?(agent: { sharing?: Sharing }): string | undefined;
  /**
   * Hears that a principal opened a session, so its first job of an agent
   * that shares workers may soon need a worker of its own (a launcher
   * without processes ignores it).
   *
   * @param principal who opened it
   * @param templates what a job of each agent that shares workers runs with
   *   under an empty lease, with its sharing: what a worker readied ahead
   *   runs when no job of the agent has come yet
   */
  expect?(principal: string, templates: readonly AheadTemplate[]): void;
  /** Stops every worker and process it started. */
  close(): Promise<void>;
}
