/**
 * The transitions of a live job: accept (a delegated child), start
 * (deadlines, sandbox), cancel (with its grace period) and end (the one terminal outcome, everything the job
 * holds released first).
 *
 * @module
 */
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import type { JobStatus, Result } from "../protocol/messages.ts";
import { nowIso } from "../protocol/time.ts";
import type { Sandbox, SandboxListener } from "../sandbox/sandbox.ts";
import { startJobSpan } from "./tracing.ts";
import type { EventSink, SinkLookup } from "./sink.ts";
import { setDeadline } from "./timers.ts";
import type { JobLimits } from "./limits.ts";
import { cancelled, JOB_ENDED, type LiveJob, type Outcome } from "./live_job.ts";
import type { JobTable } from "./job_table.ts";
import type { Fanout } from "./fanout.ts";
import type { JobCredentials } from "./job_credentials.ts";
import { acceptedPayload } from "./admission.ts";
import type { JobEvents } from "./operator_events.ts";
import type { JobRecord } from "../store/records.ts";
import type { KvWrite } from "../store/large_value.ts";

/** What the transitions need. */
export interface LifecycleDeps {
  /** Where agents run. */
  sandbox: Sandbox;
  /** Finds the in-memory session for an id. */
  sinks: SinkLookup;
  /** The live jobs. */
  live: JobTable;
  /** Emits the job's envelopes. */
  fanout: Fanout;
  /** Revokes a job's credentials when it ends. */
  credentials: JobCredentials;
  /** Counts ended jobs and reports those their sandbox failed. */
  events: JobEvents;
  /** Writes committed with a job's terminal envelope (the runtime log's entry of it). */
  ending?: (job: JobRecord) => KvWrite[];
  /** Told of every job that ended, once its terminal is committed and delivered. */
  onEnded?: (job: JobRecord) => void;
  /**
   * Told of every job whose terminal is decided, as it is staged, and
   * whether it ran at once on a ready worker (else it waited for one).
   */
  onTerminal?: (job: JobRecord, warm: boolean) => void;
  /**
   * The listener of a job's agent.
   *
   * @param live the job
   * @returns where its sandbox reports
   */
  listen(live: LiveJob): SandboxListener;
}

/** Starts, cancels and ends live jobs. */
export class Lifecycle {
  #sandbox: Sandbox;
  #sinks: SinkLookup;
  #live: JobTable;
  #fanout: Fanout;
  #credentials: JobCredentials;
  #events: JobEvents;
  #onEnded: ((job: JobRecord) => void) | undefined;
  #onTerminal: ((job: JobRecord, warm: boolean) => void) | undefined;
  #journalEnding: ((job: JobRecord) => KvWrite[]) | undefined;
  #endingCount = 0;
  #listen: (live: LiveJob) => SandboxListener;
  #limits: JobLimits;

  /**
   * @param deps the sandbox, sessions, live jobs, fan-out, credentials, operator events and agent listeners
   * @param limits tunables (cancel grace)
   */
  constructor(deps: LifecycleDeps, limits: JobLimits) {
    this.#sandbox = deps.sandbox;
    this.#sinks = deps.sinks;
    this.#live = deps.live;
    this.#fanout = deps.fanout;
    this.#credentials = deps.credentials;
    this.#events = deps.events;
    this.#onEnded = deps.onEnded;
    this.#onTerminal = deps.onTerminal;
    this.#journalEnding = deps.ending;
    this.#listen = deps.listen;
    this.#limits = limits;
  }

  /**
   * Starts a job: `status {phase: "running"}`, its deadlines, and its agent
   * in the sandbox.
   *
   * @param live the job, already live
   * @param expiresMs when its lease expires (epoch ms), if it does
   */
  start(live: LiveJob, expiresMs: number | undefined): void {
    const job = live.record;
    live.span = startJobSpan(job, live.parent?.span);
    job.status = "running";
    this.#fanout.announceRunning(live);
    if (job.max_runtime_sec) {
      live.timers.push(setDeadline(
        () =>
          this.end(live, {
            status: "timed_out",
            error: new ArcpError(
              "TIMEOUT",
              `job exceeded max_runtime_sec (${job.max_runtime_sec} s)`,
            ),
          }),
        Date.now() + job.max_runtime_sec * 1000,
      ));
    }
    if (expiresMs !== undefined) {
      live.timers.push(setDeadline(
        () =>
          this.end(live, {
            status: "error",
            error: new ArcpError(
              "LEASE_EXPIRED",
              `lease expired at ${job.lease_constraints?.expires_at}`,
            ),
          }),
        expiresMs,
      ));
    }
    const credentials = this.#credentials.current(job.job_id);
    this.#sandbox.start(
      {
        ...(credentials ? { credentials } : {}),
        jobId: job.job_id,
        principal: job.principal,
        traceId: job.trace_id,
        ...(live.span ? { spanId: live.span.span.spanContext().spanId } : {}),
        agentUrl: live.agentUrl,
        input: live.input,
        lease: job.lease,
        ...(live.sharing ? { sharing: live.sharing } : {}),
      },
      this.#listen(live),
    ).then(
      (run) => {
        // The job may have ended (cancel, timeout) while its sandbox was starting.
        if (live.ended) run.kill();
        else {
          this.#events.running(job);
          live.run = run;
          if (!run.warm) {
            // It waits for a worker to load: a record held for its first
            // envelope would only wait with it, so it goes now.
            live.waitedForWorker = true;
            live.pendingRecord?.queue();
          }
          // A rotation while the sandbox was starting: hand over the value that is live now.
          const now = this.#credentials.current(job.job_id);
          if (credentials && now?.some((c, i) => c.value !== credentials[i]?.value)) {
            run.credentials(now);
          }
          if (live.cancelling) run.abort("cancelled");
        }
      },
      (err) =>
        this.end(
          live,
          live.cancelling ? cancelled(live) : { status: "error", error: toArcpError(err) },
        ),
    );
    // The operator's line and count wait until the start message is on its way: they are
    // not on the job's path (a microtask queued now runs after the one that writes it).
    afterward(() => {
      this.#events.accepted(job);
      this.#events.started(job);
    });
  }

  /**
   * Makes a delegated child live and tells its session with `job.accepted`.
   *
   * @param live the child, its record written
   */
  accept(live: LiveJob): void {
    const job = live.record;
    this.#live.add(live);
    this.#sinks(job.session_id)?.sendControl("job.accepted", acceptedPayload(job), {
      job_id: job.job_id,
      trace_id: job.trace_id,
    });
  }

  /**
   * Starts cancelling a live job: `job.cancelled`, abort, then kill after
   * the grace period.
   *
   * @param live the job
   * @param reason why, if given
   * @param details what the CANCELLED error's details carry (an operator cancel names its actor)
   */
  cancel(live: LiveJob, reason?: string, details?: Record<string, unknown>): void {
    if (live.ended || live.cancelling) return;
    const pending = live.pendingRecord;
    if (pending) {
      // Its `job.cancelled` must not reach the client ahead of its `job.accepted`:
      // the cancel takes effect once that is sent (never, if the job is refused).
      pending.accepted.then(() => this.cancel(live, reason, details), () => {});
      return;
    }
    live.cancelling = true;
    if (reason) live.cancelReason = reason;
    if (details) live.cancelDetails = details;
    const job = live.record;
    this.#sinks(job.session_id)?.sendControl("job.cancelled", reason ? { reason } : {}, {
      job_id: job.job_id,
      trace_id: job.trace_id,
    });
    live.run?.abort(reason ?? "cancelled");
    live.timers.push(
      setDeadline(() => this.end(live, cancelled(live)), Date.now() + this.#limits.cancelGraceMs),
    );
  }

  /**
   * Ends a job with its outcome, once: stops everything it runs, revokes its
   * credentials, cancels its children, settles its parent's `ctx.delegate`,
   * and sends the terminal envelope.
   *
   * @param live the job
   * @param outcome how it ended
   * @param sink its session, when not the one in memory (recovery)
   * @returns resolves once the terminal envelope is committed
   */
  async end(live: LiveJob, outcome: Outcome, sink?: EventSink): Promise<void> {
    if (live.ended) return;
    live.ended = true;
    this.#endingCount++;
    try {
      await this.#end(live, outcome, sink);
    } finally {
      this.#endingCount--;
    }
    this.#onEnded?.(live.record);
  }

  /**
   * Stops a job whose record could not be committed: its agent is killed and
   * it leaves the live jobs without a terminal, since the client never heard
   * of it (its submit is refused instead).
   *
   * @param live the job
   */
  discard(live: LiveJob): void {
    if (live.ended) return;
    live.ended = true;
    live.abort.abort(JOB_ENDED);
    for (const cancel of live.timers) cancel();
    live.run?.kill();
    this.#live.delete(live);
    this.#fanout.forget(live);
    for (const child of live.children) this.cancel(child, "parent job ended");
    live.span?.end(live.record);
  }

  /** Jobs whose end is under way: their terminal is not yet committed and delivered. */
  get ending(): number {
    return this.#endingCount;
  }

  async #end(live: LiveJob, outcome: Outcome, sink?: EventSink): Promise<void> {
    if (outcome.status === "cancelled" && live.cancelDetails) {
      const { message, details } = outcome.error;
      outcome = {
        status: "cancelled",
        error: new ArcpError("CANCELLED", message, { ...details, ...live.cancelDetails }),
      };
    }
    live.abort.abort(JOB_ENDED);
    for (const cancel of live.timers) cancel();
    live.run?.kill();
    const job = live.record;
    job.status = outcome.status as JobStatus;
    job.ended_at = nowIso();
    this.#live.delete(live);
    if (outcome.status !== "success") job.error = outcome.error.toPayload();
    const ended = outcome;
    let terminal: Promise<void> | undefined;
    try {
      // Revocation is attempted before the terminal message goes out.
      if (this.#credentials.provisioned) {
        await Promise.all([
          this.#credentials.revoke(job.job_id),
          this.#credentials.revokeDescendants(live),
        ]);
      }
      for (const child of live.children) this.cancel(child, "parent job ended");
      if (live.parent) live.parent.children.delete(live);
      live.settle?.(outcome);
      // A record still held is numbered before the terminal's entry: they commit together.
      live.pendingRecord?.prepare();
      this.#onTerminal?.(job, !live.waitedForWorker);
      const result: Result | undefined = outcome.status !== "success" ? undefined : live.stream
        ? {
          final_status: "success",
          result_id: live.stream.resultId,
          result_size: live.stream.bytes,
        }
        : { final_status: "success", result: outcome.result };
      // Numbered and queued in one step (see `JobJournal`).
      terminal = this.#fanout.emit(
        live,
        result ? "job.result" : "job.error",
        result ?? { final_status: outcome.status, ...job.error! },
        sink,
        undefined,
        this.#journalEnding?.(job),
      );
    } finally {
      // The span's end, the operator's line and counts are not on the terminal's path: a
      // microtask queued once the terminal is staged runs after the one that starts its
      // commit, so they overlap the commit instead of delaying it.
      afterward(() => {
        live.span?.end(job);
        this.#events.ended(job, ended);
      });
    }
    await terminal;
  }
}

/**
 * Runs operator accounting (log lines, counters, spans) in a microtask
 * queued now, after whatever the job's path has queued so far. A failing
 * observer must not end the runtime, as an uncaught error in a microtask would.
 */
function afterward(account: () => void): void {
  queueMicrotask(() => {
    try {
      account();
    } catch {
      // Accounting is not the job's business: the job goes on as it would have.
    }
  });
}
