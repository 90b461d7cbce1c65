/**
 * What the jobs layer tells operators. Every job is one line when it starts
 * and one when it ends (id, agent, principal, status, duration, error code,
 * and an agent's error message), and is counted by agent when it starts and
 * by status and agent when it ends; every `job.event` is counted by kind, and
 * how long a job took from submit to its agent running is observed. When its
 * sandbox failed it (the agent stopped beating, its sandbox process died)
 * that end line says so, with the reason, and steps a counter of its own.
 * Never a secret: inputs, results and leases stay out.
 *
 * | event | log line | metric |
 * | --- | --- | --- |
 * | a job is accepted and starts (`running`) | `job accepted` (info) | `arcp_jobs_started_total{agent}` |
 * | its agent runs in a worker | — | `arcp_job_start_seconds` (histogram, from submit) |
 * | a `job.event` is emitted | — | `arcp_job_events_total{kind}` (vendor kinds as `vendor`) |
 * | any other job ends | `job ended` (info; warn when it failed) | `arcp_jobs_ended_total{status,agent}` |
 * | the agent's liveness beats stopped (`HEARTBEAT_LOST`) | `job ended: agent heartbeat lost` (warn) | `arcp_jobs_heartbeat_lost_total` |
 * | its sandbox process died (exit, signal, heap exhausted) | `job ended: sandbox process crashed` (error) | `arcp_sandbox_crashes_total` |
 * | this node ends a job of a dead node | `ending a job of a dead node` (warn) | `arcp_node_takeovers_total` |
 * | this node finds its lease taken and stops its jobs | `node lease lost: …` (error) | `arcp_node_fenced_total` |
 *
 * @module
 */
import type { ArcpError } from "../protocol/errors.ts";
import { EVENT_BODIES, isReservedKind } from "../protocol/events.ts";
import type { JobRecord } from "../store/records.ts";
import type { Logger } from "../logger.ts";
import { type Counter, type Histogram, Metrics } from "../metrics.ts";
import type { Outcome } from "./live_job.ts";

/** How a sandbox failed a job. */
export type SandboxFailure = "heartbeat_lost" | "host_crash";

/**
 * The sandbox reports a process that died as an `INTERNAL_ERROR` saying so
 * (`sandbox process exited (code …)`), or with `details.cap: "heap"` when
 * V8 ran out of heap; an agent cannot carry `HEARTBEAT_LOST` through.
 */
const HOST_EXIT = /\bsandbox process exited\b/;

/** Buckets of the start latency (s): a warm worker is milliseconds, a cold process a second or more. */
const START_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** How much of a failure's message goes into the log line. */
const MAX_MESSAGE = 300;

/**
 * Whether (and how) a job's error says its sandbox failed it.
 *
 * @param error the error the job ended with
 * @returns the kind of failure, or undefined for any other error
 * @example
 * ```ts
 * import { ArcpError } from "../protocol/errors.ts";
 * import { sandboxFailureOf } from "./operator_events.ts";
 * sandboxFailureOf(new ArcpError("HEARTBEAT_LOST", "agent missed 5 liveness beats")); // "heartbeat_lost"
 * ```
 */
export function sandboxFailureOf(error: ArcpError): SandboxFailure | undefined {
  if (error.code === "HEARTBEAT_LOST") return "heartbeat_lost";
  if (error.code !== "INTERNAL_ERROR") return undefined;
  if (error.details?.cap === "heap" || HOST_EXIT.test(error.message)) return "host_crash";
  return undefined;
}

/** Logs and counts the jobs layer's operator events. */
export class JobEvents {
  #log: Logger;
  #started: Counter;
  #ended: Counter;
  #events: Counter;
  #startLatency: Histogram;
  #heartbeatLost: Counter;
  #crashes: Counter;
  #takeovers: Counter;
  #fenced: Counter;

  /**
   * Declares the counters in a registry.
   *
   * @param log where the lines go
   * @param metrics where the counters live (a private registry when omitted)
   */
  constructor(log: Logger, metrics: Metrics = new Metrics()) {
    this.#log = log;
    this.#started = metrics.counter(
      "arcp_jobs_started_total",
      "Jobs started (status running), by agent.",
      ["agent"],
    );
    this.#events = metrics.counter(
      "arcp_job_events_total",
      "job.event envelopes emitted, by kind (vendor kinds as vendor); rate() gives events/s.",
      ["kind"],
    );
    this.#startLatency = metrics.histogram(
      "arcp_job_start_seconds",
      "Time from a job's submit to its agent running in a worker (waiting for a sandbox included).",
      START_BUCKETS,
    );
    this.#ended = metrics.counter(
      "arcp_jobs_ended_total",
      "Jobs that reached a terminal state, by status and agent.",
      ["status", "agent"],
    );
    this.#heartbeatLost = metrics.counter(
      "arcp_jobs_heartbeat_lost_total",
      "Jobs ended HEARTBEAT_LOST: the agent's event loop stopped beating.",
    );
    this.#crashes = metrics.counter(
      "arcp_sandbox_crashes_total",
      "Jobs ended because their sandbox process died (exit, signal, heap exhausted).",
    );
    this.#takeovers = metrics.counter(
      "arcp_node_takeovers_total",
      "Jobs of dead nodes this node claimed and ended.",
    );
    this.#fenced = metrics.counter(
      "arcp_node_fenced_total",
      "Times this node found its lease taken (presumed dead) and stopped its jobs.",
    );
    this.#heartbeatLost.inc({}, 0);
    this.#crashes.inc({}, 0);
    for (const kind of [...Object.keys(EVENT_BODIES), "vendor"]) this.#events.inc({ kind }, 0);
    this.#takeovers.inc({}, 0);
    this.#fenced.inc({}, 0);
  }

  /**
   * A job started: its status is `running` and its agent is being launched.
   *
   * @param job its record
   */
  started(job: JobRecord): void {
    this.#started.inc({ agent: job.agent });
  }

  /**
   * A job's agent runs in a worker.
   *
   * @param job its record
   * @param at when (epoch ms)
   */
  running(job: JobRecord, at: number = Date.now()): void {
    // `created_ms` is `created_at` as a number: no text to parse per job.
    const since = job.created_ms;
    if (Number.isFinite(since)) this.#startLatency.observe(Math.max(0, at - since) / 1000);
  }

  /**
   * A `job.event` was emitted.
   *
   * @param kind its kind
   * @param n how many events of that kind (a burst is counted at once)
   */
  event(kind: string, n = 1): void {
    this.#events.inc({ kind: isReservedKind(kind) ? kind : "vendor" }, n);
  }

  /**
   * This node claimed a job of a dead node and is ending it.
   *
   * @param job the claimed record
   * @param deadNode the node that ran it (undefined: a record from before nodes)
   */
  tookOver(job: JobRecord, deadNode: string | undefined): void {
    this.#takeovers.inc();
    this.#log.warn("ending a job of a dead node", {
      job_id: job.job_id,
      dead_node: deadNode ?? "(none)",
      principal: job.principal,
      session_id: job.session_id,
    });
  }

  /**
   * This node found its lease taken: the others presumed it dead and ended its jobs.
   *
   * @param nodeId this node
   */
  fenced(nodeId: string): void {
    this.#fenced.inc();
    this.#log.error(
      "node lease lost: another node presumed this one dead and ended its jobs; stopping them here",
      { node_id: nodeId },
    );
  }

  /**
   * A job was accepted and starts (submitted or delegated).
   *
   * @param job its record
   */
  accepted(job: JobRecord): void {
    this.#log.info("job accepted", {
      job_id: job.job_id,
      agent: job.agent,
      principal: job.principal,
      session_id: job.session_id,
      ...(job.parent_job_id ? { parent_job_id: job.parent_job_id } : {}),
    });
  }

  /**
   * A job reached its terminal state.
   *
   * @param job its record, terminal
   * @param outcome how it ended
   */
  ended(job: JobRecord, outcome: Outcome): void {
    this.#ended.inc({ status: outcome.status, agent: job.agent });
    const fields = {
      job_id: job.job_id,
      agent: job.agent,
      principal: job.principal,
      session_id: job.session_id,
      status: outcome.status,
      // Accepted when created (one instant, `created_ms`): no text to parse per job.
      duration_ms: Date.now() - job.created_ms,
      ...(outcome.status === "success" ? {} : {
        code: outcome.error.code,
        error: outcome.error.message.slice(0, MAX_MESSAGE),
      }),
    };
    const failure = outcome.status === "success" ? undefined : sandboxFailureOf(outcome.error);
    // One line per ended job: a sandbox failure's own line, else the plain one.
    if (failure === "heartbeat_lost") {
      this.#heartbeatLost.inc();
      this.#log.warn("job ended: agent heartbeat lost", { reason: failure, ...fields });
    } else if (failure === "host_crash") {
      this.#crashes.inc();
      this.#log.error("job ended: sandbox process crashed", { reason: failure, ...fields });
    } else if (outcome.status === "error") {
      // A failure is worth a look (an agent's throw carries its message); a cancel or timeout is not.
      this.#log.warn("job ended", fields);
    } else {
      this.#log.info("job ended", fields);
    }
  }
}
