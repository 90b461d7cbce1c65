/**
 * A job running in this process: its record, its agent, its lease guard and
 * budget, its place in a delegation tree, and who watches it. One factory
 * builds it, whether the job was submitted, delegated or recovered.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import type { FailedStatus } from "../protocol/messages.ts";
import type { AgentRun, Sharing } from "../sandbox/sandbox.ts";
import type { JobRecord } from "../store/records.ts";
import type { BudgetCounters } from "../lease/budget.ts";
import { LeaseGuard, type LeaseGuardOptions } from "../lease/guard.ts";
import type { ResultStream } from "./result_stream.ts";
import type { JobSpan } from "./tracing.ts";
import type { PendingRecord } from "./pending_record.ts";
import type { EventSink, SeqPayload, SeqType } from "./sink.ts";

/** A subscribed session. Until its history replay is done, live envelopes wait in `queue`. */
export interface Subscriber {
  /** The subscribed session. */
  sink: EventSink;
  /** Envelopes held back while history is replayed, with their history positions. */
  queue?: Array<[SeqType, SeqPayload, number]>;
}

/** The outcome that ends a job. */
export type Outcome =
  | { status: "success"; result: unknown }
  | { status: FailedStatus; error: ArcpError };

/**
 * Starts a live job's agent.
 *
 * @param live the job
 * @param expiresMs when its lease expires (epoch ms), if it does
 */
export type StartJob = (live: LiveJob, expiresMs: number | undefined) => void;

/**
 * Ends a job with its outcome.
 *
 * @param live the job
 * @param outcome how it ended
 * @returns resolves once the terminal envelope is out
 */
export type EndJob = (live: LiveJob, outcome: Outcome) => Promise<void>;

/** A job running in this process. */
export interface LiveJob {
  /** The job's record, kept current as the job runs. */
  record: JobRecord;
  /** The running agent, once its sandbox started. */
  run?: AgentRun;
  /** The job's input. */
  input: unknown;
  /** File URL of the agent module. */
  agentUrl: string;
  /** How the agent's workers are shared between jobs; absent for a fresh worker per job. */
  sharing?: Sharing;
  /** Set once a terminal outcome is decided. */
  ended: boolean;
  /** Set when a cancel was accepted; the terminal will be CANCELLED. */
  cancelling: boolean;
  /** The reason the cancel gave, for the terminal's message. */
  cancelReason?: string;
  /** Who cancelled, when not the submitting session (an operator): the CANCELLED error's details. */
  cancelDetails?: Record<string, unknown>;
  /** The body of the job's latest `progress` event, for the management API. */
  progress?: Record<string, unknown>;
  /** Cancels the job's deadlines. */
  timers: Array<() => void>;
  /** Checks what the agent asks the runtime for. */
  guard: LeaseGuard;
  /** Budget counters, when the lease has `cost.budget`. */
  budget?: BudgetCounters;
  /** Aborted when the job ends (tools in flight stop). */
  abort: AbortController;
  /** Other sessions watching this job, by session id. */
  subscribers: Map<string, Subscriber>;
  /**
   * While its owner session, back on this node, catches up from the job's
   * history what another node fed it meanwhile: the envelopes emitted since,
   * with their history positions, delivered after the catch-up.
   */
  ownerQueue?: Array<[SeqType, SeqPayload, number]>;
  /** Set once its owner session, back here, caught up; cleared when the session leaves. */
  ownerInStep?: boolean;
  /** The streamed result, once the agent opens one. */
  stream?: ResultStream;
  /** Delegation depth (0 for a submitted job). */
  depth: number;
  /** The parent, for a delegated job. */
  parent?: LiveJob;
  /** Live children. */
  children: Set<LiveJob>;
  /** Delegations past the caps whose child is not yet in `children`. */
  startingChildren: number;
  /** Settles `ctx.delegate` in the parent, for a delegated job. */
  settle?: (outcome: Outcome) => void;
  /** The job's OpenTelemetry span, while it runs. */
  span?: JobSpan;
  /** Set once the terminal envelope has been staged. */
  terminated?: boolean;
  /**
   * While the job runs ahead of its record's commit (an early start): the
   * record, which every envelope of the job waits for (see `PendingRecord`).
   * Cleared once `job.accepted` was sent.
   */
  pendingRecord?: PendingRecord;
  /**
   * Set when its sandbox had no worker ready for it at start (one still
   * loading, or a queue): its time to its terminal says nothing about how
   * fast its agent ends, so it does not count toward the accept hold.
   */
  waitedForWorker?: boolean;
  /**
   * While its `status {phase: "running"}` is announced but not yet staged,
   * the time it was announced: it goes out with the job's next envelope
   * (see `Fanout.announceRunning`), stamped with this time.
   */
  runningDue?: string;
  /**
   * Set when an upstream refused one of the job's credentials for budget:
   * the job's failure is then `BUDGET_EXHAUSTED` (§9.6), whatever the agent
   * made of the refusal.
   */
  upstreamBudget?: string;
  /** What the job has committed to its log, for the output quotas. */
  output: { events: number; bytes: number };
  /**
   * Whether its job id, trace id and owner session's id are all ASCII, so
   * that only an event's payload can make its logged text longer in UTF-8
   * than in characters; worked out at its first event.
   */
  plainIds?: boolean;
}

/** What {@linkcode newLiveJob} needs. */
export interface LiveJobInit {
  /** The job's record. */
  record: JobRecord;
  /** The job's input (default null). */
  input?: unknown;
  /** File URL of the agent module (default none). */
  agentUrl?: string;
  /** How the agent's workers are shared between jobs. */
  sharing?: Sharing;
  /** `lease_constraints.expires_at` in epoch ms. */
  expiresMs?: number;
  /** Budget counters, when the lease has `cost.budget`. */
  budget?: BudgetCounters;
  /** The delegating job, for a delegated one. */
  parent?: LiveJob;
  /**
   * Lease policy for the job's guard. Absent for a job that will never run
   * (one recovered after a crash, only to be ended): its guard grants nothing.
   */
  policy?: LeaseGuardOptions;
}

/**
 * Builds the in-memory state of a job.
 *
 * @param init the record and what the job runs with
 * @returns the live job, not yet started
 */
export function newLiveJob(init: LiveJobInit): LiveJob {
  const { record, parent } = init;
  // Every field is present from the start, in one order, optional ones as
  // undefined: a job's fields are then set in place, never added, so every
  // live job keeps one shape and the per-job code's inline caches stay
  // monomorphic (fields added in whatever order a job's path took gave
  // several shapes per site, and a deleted one a dictionary-mode object).
  return {
    record,
    run: undefined,
    input: init.input ?? null,
    agentUrl: init.agentUrl ?? "",
    sharing: init.sharing,
    ended: false,
    cancelling: false,
    cancelReason: undefined,
    cancelDetails: undefined,
    progress: undefined,
    timers: [],
    guard: init.policy
      ? new LeaseGuard(record.lease, init.expiresMs, init.budget, init.policy)
      : new LeaseGuard({}, undefined, undefined),
    budget: init.budget,
    abort: new AbortController(),
    subscribers: new Map(),
    ownerQueue: undefined,
    ownerInStep: undefined,
    stream: undefined,
    depth: parent ? parent.depth + 1 : 0,
    parent,
    children: new Set(),
    startingChildren: 0,
    settle: undefined,
    span: undefined,
    terminated: undefined,
    pendingRecord: undefined,
    waitedForWorker: undefined,
    runningDue: undefined,
    upstreamBudget: undefined,
    output: { events: 0, bytes: 0 },
    plainIds: undefined,
  };
}

/**
 * The reason a job's abort signal carries once the job ends: one
 * `AbortError` made once, because each new one captures a stack trace
 * (`abort()` without a reason made one per job, measurably).
 */
export const JOB_ENDED: DOMException = new DOMException("the job ended", "AbortError");

/**
 * The outcome of a cancelled job; its message carries the cancel's reason.
 *
 * @param live the job (its `cancelReason`, if any, goes into the message)
 * @returns it
 */
export function cancelled(live?: LiveJob): Outcome {
  const reason = live?.cancelReason;
  const message = reason ? `job was cancelled: ${reason}` : "job was cancelled";
  return { status: "cancelled", error: new ArcpError("CANCELLED", message) };
}
