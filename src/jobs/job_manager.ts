/**
 * The job state machine: submit (with idempotency and caps), start in the
 * sandbox, events, cancel, timeout, lease expiry, terminal outcome, and
 * recovery of jobs a dead process left running.
 *
 * @module
 */
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import { newJobId, newTraceId, sha256Hex } from "../protocol/ids.ts";
import type { Accepted, JobStatus, Submit } from "../protocol/messages.ts";
import { nowIso } from "../protocol/time.ts";
import type { AgentRegistry } from "../sandbox/registry.ts";
import { type AgentRun, checkResult, type Sandbox } from "../sandbox/sandbox.ts";
import type { Store } from "../store/store.ts";
import type { JobRecord } from "../store/records.ts";
import type { KvWrite } from "../store/large_value.ts";
import type { Logger } from "../logger.ts";
import { newUlid } from "../protocol/ids.ts";
import { LeaseGuard } from "../lease/guard.ts";
import { BUILTIN_TOOLS, type ToolHandler } from "./tools.ts";
import { BudgetCounters } from "../lease/budget.ts";
import { ResultStream } from "./result_stream.ts";
import { type JobSpan, startJobSpan } from "./tracing.ts";
import type { Credential, CredentialService } from "../credentials/credentials.ts";
import { checkLeaseSubset } from "../lease/subset.ts";
import { type Lease, LeaseSchema } from "../protocol/lease.ts";
import { describeZodError } from "../protocol/envelope.ts";
import type { AgentModule } from "../sandbox/registry.ts";
import { matchesAny } from "../lease/glob.ts";
import { parseUtc } from "../protocol/time.ts";
import type { EventSink, SeqType, SinkLookup, Staged } from "./sink.ts";
import { checkExpiry, checkInput, paramsHash } from "./submit_check.ts";
import { setDeadline } from "./timers.ts";

/** Tunables of the jobs layer. */
export interface JobLimits {
  /** Live jobs one principal may have. */
  maxJobsPerPrincipal: number;
  /** How long an agent has to stop after a cancel before it is killed (ms). */
  cancelGraceMs: number;
  /** How long idempotency keys are kept (ms). */
  idempotencyTtlMs: number;
  /** A lease without `model.use` forbids every model. */
  requireModelLease: boolean;
  /** Largest decoded result chunk, bytes. */
  resultChunkBytes: number;
  /** Largest streamed result, bytes. */
  resultTotalBytes: number;
  /** Deepest chain of delegations (a submitted job is depth 0). */
  maxDelegationDepth: number;
  /** Live children one job may have. */
  maxChildrenPerJob: number;
}

/** Defaults of {@linkcode JobLimits}. */
export const DEFAULT_JOB_LIMITS: JobLimits = {
  maxJobsPerPrincipal: 100,
  cancelGraceMs: 2000,
  idempotencyTtlMs: 24 * 3600 * 1000,
  requireModelLease: true,
  resultChunkBytes: 1024 * 1024,
  resultTotalBytes: 256 * 1024 * 1024,
  maxDelegationDepth: 4,
  maxChildrenPerJob: 16,
};

/** Who submits: the session and its principal. */
export interface Submitter {
  /** The submitting session. */
  sink: EventSink;
  /** The submit envelope's trace id, if any. */
  traceId?: string;
}

/** What a submit produced. */
export interface Submission {
  /** The `job.accepted` payload. */
  accepted: Accepted;
  /** Starts the job; call after `job.accepted` is sent. Absent for a replay. */
  start?: () => void;
}

/** A job running in this process. */
interface LiveJob {
  record: JobRecord;
  run?: AgentRun;
  input: unknown;
  agentUrl: string;
  /** Set once a terminal outcome is decided. */
  ended: boolean;
  /** Set when a cancel was accepted; the terminal will be CANCELLED. */
  cancelling: boolean;
  timers: Array<() => void>;
  /** Checks what the agent asks the runtime for. */
  guard: LeaseGuard;
  /** Budget counters, when the lease has `cost.budget`. */
  budget?: BudgetCounters;
  /** Aborted when the job ends (tools in flight stop). */
  abort: AbortController;
  /** Other sessions watching this job, by session id. */
  subscribers: Map<string, Subscriber>;
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
}

/** A subscribed session. Until its history replay is done, live envelopes wait in `queue`. */
interface Subscriber {
  sink: EventSink;
  queue?: Array<[SeqType, Record<string, unknown>]>;
}

/** One entry of a job's own history: the envelope as its owner session got it. */
interface HistoryEntry {
  type: SeqType;
  job_id: string;
  trace_id?: string;
  /** The owner session's seq (or the latest before it, when the owner did not receive it). */
  event_seq?: number;
  payload: Record<string, unknown>;
}

/** Options of {@linkcode JobManager.subscribe}. */
export interface SubscribeOptions {
  /** Replay history first. */
  history: boolean;
  /** Replay envelopes whose owner-session seq is above this. */
  fromEventSeq: number;
}

/** An accepted subscription. */
export interface Subscription {
  /** The job as it was when subscribed. */
  job: JobRecord;
  /** Replays history (if asked) and then switches to live delivery. */
  replay(): Promise<void>;
}

/** Envelopes read per replay step. */
const REPLAY_BATCH = 200;

/** Text one replay commit carries at most (well inside KV's ~800 KiB per atomic write). */
const REPLAY_GROUP_CHARS = 150_000;

/** The outcome that ends a job. */
type Outcome =
  | { status: "success"; result: unknown }
  | { status: "error" | "cancelled" | "timed_out"; error: ArcpError };

/** Runs jobs. */
export class JobManager {
  #store: Store;
  #agents: AgentRegistry;
  #sandbox: Sandbox;
  #sinks: SinkLookup;
  #log: Logger;
  #limits: JobLimits;
  #live = new Map<string, LiveJob>();
  #tools: Record<string, ToolHandler>;
  #protectedPaths: readonly string[];
  #credentials: CredentialService | undefined;
  #perPrincipal = new Map<string, number>();

  /**
   * @param deps the store, agent inventory, sandbox, session lookup and logger
   * @param limits tunables
   */
  constructor(
    deps: {
      store: Store;
      agents: AgentRegistry;
      sandbox: Sandbox;
      sinks: SinkLookup;
      log: Logger;
      tools?: Record<string, ToolHandler>;
      protectedPaths?: readonly string[];
      credentials?: CredentialService;
    },
    limits: Partial<JobLimits> = {},
  ) {
    this.#store = deps.store;
    this.#agents = deps.agents;
    this.#sandbox = deps.sandbox;
    this.#sinks = deps.sinks;
    this.#log = deps.log;
    this.#tools = { ...BUILTIN_TOOLS, ...deps.tools };
    this.#protectedPaths = deps.protectedPaths ?? [];
    this.#credentials = deps.credentials;
    this.#limits = { ...DEFAULT_JOB_LIMITS, ...limits };
  }

  /** Jobs running in this process. */
  get liveCount(): number {
    return this.#live.size;
  }

  /**
   * Accepts a submit, or throws the rejection.
   *
   * @param who the submitting session
   * @param submit the decoded payload
   * @returns the accepted payload, and how to start the job
   * @throws {ArcpError} the submit rejection
   */
  async submit(who: Submitter, submit: Submit): Promise<Submission> {
    const principal = who.sink.principal;
    const now = Date.now();
    const agent = this.#agents.resolve(submit.agent);
    const expiresMs = checkExpiry(submit, now);
    checkInput(submit);

    let idem: { keyHash: string; paramsHash: string } | undefined;
    if (submit.idempotency_key !== undefined) {
      idem = {
        keyHash: await sha256Hex(submit.idempotency_key),
        paramsHash: await paramsHash(submit),
      };
      const replay = await this.#replay(principal, idem);
      if (replay) return replay;
    }
    if ((this.#perPrincipal.get(principal) ?? 0) >= this.#limits.maxJobsPerPrincipal) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `principal has ${this.#limits.maxJobsPerPrincipal} live jobs, the most allowed`,
        {
          cap: "concurrent_jobs",
          limit: this.#limits.maxJobsPerPrincipal,
        },
      );
    }

    const lease = submit.lease_request ?? {};
    const jobId = newJobId();
    const createdAt = new Date(now).toISOString();
    const record: JobRecord = {
      job_id: jobId,
      principal,
      session_id: who.sink.sessionId,
      agent: `${agent.name}@${agent.version}`,
      status: "pending",
      lease,
      trace_id: who.traceId ?? newTraceId(),
      created_at: createdAt,
      created_ms: now,
      accepted_at: createdAt,
      last_event_seq: 0,
      log_length: 0,
    };
    if (submit.lease_constraints?.expires_at) {
      record.lease_constraints = { expires_at: submit.lease_constraints.expires_at };
    }
    const budget = BudgetCounters.fromLease(lease);
    if (budget) {
      record.budget = budget.initial();
      record.budget_remaining = budget.toStored();
    }
    if (submit.max_runtime_sec) record.max_runtime_sec = submit.max_runtime_sec;
    if (idem) record.idempotency_hash = idem.keyHash;

    // Issued no later than job.accepted, and only to sessions that negotiated it.
    const credentials = this.#credentials && who.sink.has("provisioned_credentials")
      ? await this.#credentials.issue({
        jobId,
        traceId: record.trace_id,
        lease,
        expiresAt: record.lease_constraints?.expires_at,
        budget: record.budget,
      })
      : undefined;
    let created: boolean;
    try {
      created = await this.#store.createJob(
        record,
        idem && {
          principal,
          keyHash: idem.keyHash,
          record: { job_id: jobId, params_hash: idem.paramsHash },
          ttlMs: this.#limits.idempotencyTtlMs,
        },
      );
    } catch (err) {
      // Nothing was accepted: the credential must not outlive the failed submit.
      if (credentials) await this.#credentials!.revokeJob(jobId);
      throw err;
    }
    if (!created) {
      if (credentials) await this.#credentials!.revokeJob(jobId);
      // Another submit claimed the key between our read and our write.
      const replay = await this.#replay(principal, idem!);
      if (replay) return replay;
      throw new ArcpError("INTERNAL_ERROR", "idempotency key changed hands during submit; retry");
    }
    const live: LiveJob = {
      record,
      input: submit.input ?? null,
      budget,
      guard: new LeaseGuard(lease, expiresMs, budget, {
        requireModelLease: this.#limits.requireModelLease,
        protectedPaths: this.#protectedPaths,
      }),
      abort: new AbortController(),
      agentUrl: agent.url,
      ended: false,
      cancelling: false,
      timers: [],
      subscribers: new Map(),
      depth: 0,
      children: new Set(),
      startingChildren: 0,
    };
    this.#live.set(jobId, live);
    this.#perPrincipal.set(principal, (this.#perPrincipal.get(principal) ?? 0) + 1);
    const accepted = acceptedPayload(record);
    if (credentials) accepted.credentials = credentials;
    return { accepted, start: () => this.#start(live, expiresMs) };
  }

  async #replay(
    principal: string,
    idem: { keyHash: string; paramsHash: string },
  ): Promise<Submission | undefined> {
    const existing = await this.#store.getIdempotency(principal, idem.keyHash);
    if (!existing) return undefined;
    if (existing.params_hash !== idem.paramsHash) {
      throw new ArcpError(
        "DUPLICATE_KEY",
        "idempotency_key was already used with different parameters",
        {
          existing_job_id: existing.job_id,
        },
      );
    }
    const job = this.#live.get(existing.job_id)?.record ??
      await this.#store.getJob(existing.job_id);
    if (!job) return undefined;
    // A replay never re-issues; it carries the original credentials while the job is live.
    const accepted = acceptedPayload(job);
    const credentials = this.#credentials?.current(job.job_id);
    if (credentials) accepted.credentials = credentials;
    return { accepted };
  }

  #start(live: LiveJob, expiresMs: number | undefined): void {
    const job = live.record;
    live.span = startJobSpan(job, live.parent?.span);
    job.status = "running";
    this.#emit(live, "job.event", event("status", { phase: "running" }));
    if (job.max_runtime_sec) {
      live.timers.push(setDeadline(
        () =>
          this.#end(live, {
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
          this.#end(live, {
            status: "error",
            error: new ArcpError(
              "LEASE_EXPIRED",
              `lease expired at ${job.lease_constraints?.expires_at}`,
            ),
          }),
        expiresMs,
      ));
    }
    this.#sandbox.start(
      {
        jobId: job.job_id,
        principal: job.principal,
        traceId: job.trace_id,
        agentUrl: live.agentUrl,
        input: live.input,
        lease: job.lease,
      },
      {
        onEvent: (kind, body) => this.#agentEvent(live, kind, body),
        onChunk: (data, encoding) => this.#chunk(live, data, encoding),
        onChunkEnd: () => this.#chunkEnd(live),
        onCall: (op, args) => this.#call(live, op, args),
        onResult: (result) => this.#finish(live, result),
        onError: (error) =>
          this.#end(live, live.cancelling ? cancelled() : { status: "error", error }),
      },
    ).then(
      (run) => {
        // The job may have ended (cancel, timeout) while its sandbox was starting.
        if (live.ended) run.kill();
        else {
          live.run = run;
          if (live.cancelling) run.abort("cancelled");
        }
      },
      (err) =>
        this.#end(
          live,
          live.cancelling ? cancelled() : { status: "error", error: toArcpError(err) },
        ),
    );
  }

  /** The agent returned: a streamed result must not also come inline. */
  #finish(live: LiveJob, result: unknown): void {
    if (live.cancelling) return void this.#end(live, cancelled());
    if (live.stream) {
      if (result !== null) {
        return void this.#end(live, {
          status: "error",
          error: new ArcpError(
            "INTERNAL_ERROR",
            "agent returned an inline result after streaming result chunks",
          ),
        });
      }
      if (!live.stream.ended) this.#chunkEnd(live);
    }
    this.#end(live, { status: "success", result });
  }

  /** One piece of the streamed result; the piece before it goes out now that `more` is known. */
  #chunk(live: LiveJob, data: string, encoding: "utf8" | "base64"): Promise<void> {
    if (live.ended) return Promise.resolve();
    live.stream ??= new ResultStream({
      chunkBytes: this.#limits.resultChunkBytes,
      totalBytes: this.#limits.resultTotalBytes,
    });
    try {
      const ready = live.stream.push(data, encoding);
      return ready
        ? this.#emit(live, "job.event", event("result_chunk", ready))
        : Promise.resolve();
    } catch (err) {
      this.#end(live, { status: "error", error: toArcpError(err) });
      return Promise.resolve();
    }
  }

  #chunkEnd(live: LiveJob): void {
    if (live.ended) return;
    live.stream ??= new ResultStream({
      chunkBytes: this.#limits.resultChunkBytes,
      totalBytes: this.#limits.resultTotalBytes,
    });
    if (live.stream.ended) return;
    this.#emit(live, "job.event", event("result_chunk", live.stream.end()));
  }

  /**
   * An event from the agent. A cost metric updates the budget before this
   * returns, so the agent's next operation is checked against the new counters.
   */
  #agentEvent(live: LiveJob, kind: string, body: Record<string, unknown>): Promise<void> {
    if (live.ended) return Promise.resolve();
    const report = kind === "metric" && live.budget
      ? live.budget.applyMetric(
        String(body.name),
        Number(body.value),
        body.unit as string | undefined,
      )
      : undefined;
    if (live.budget) live.record.budget_remaining = live.budget.toStored();
    if (kind === "metric") this.#chargeAncestors(live, body);
    const emitted = this.#emit(live, "job.event", event(kind, body));
    if (!report) return emitted;
    return this.#emit(
      live,
      "job.event",
      event("metric", {
        name: "cost.budget.remaining",
        value: report.value,
        unit: report.currency,
      }),
    );
  }

  /** Serves an agent's request of the runtime; every one is checked against the lease first. */
  async #call(live: LiveJob, op: string, args: Record<string, unknown>): Promise<unknown> {
    if (op === "delegate") return await this.#delegate(live, args);
    if (op === "authorize") {
      const ns = String(args.ns);
      try {
        return await live.guard.check(ns, String(args.target));
      } catch (err) {
        const e = toArcpError(err);
        this.#emit(
          live,
          "job.event",
          event("tool_result", { call_id: `call_${newUlid()}`, error: e.toPayload() }),
        );
        throw e;
      }
    }
    const name = String(args.name);
    const callId = `call_${newUlid()}`;
    await this.#emit(
      live,
      "job.event",
      event("tool_call", { tool: name, args: args.args ?? null, call_id: callId }),
    );
    try {
      await live.guard.check("tool.call", name);
      const handler = Object.hasOwn(this.#tools, name) ? this.#tools[name] : undefined;
      if (!handler) {
        throw new ArcpError(
          "PERMISSION_DENIED",
          `no tool named ${JSON.stringify(name.slice(0, 100))} is registered`,
        );
      }
      let result: unknown;
      try {
        result = checkResult(
          await handler(args.args ?? null, {
            jobId: live.record.job_id,
            traceId: live.record.trace_id,
            signal: live.abort.signal,
          }),
        );
      } catch (err) {
        throw err instanceof ArcpError ? err : new ArcpError(
          "INTERNAL_ERROR",
          `tool ${name} failed: ${(err as Error)?.message ?? err}`,
        );
      }
      await this.#emit(live, "job.event", event("tool_result", { call_id: callId, result }));
      return result;
    } catch (err) {
      const e = toArcpError(err);
      this.#emit(
        live,
        "job.event",
        event("tool_result", { call_id: callId, error: e.toPayload() }),
      );
      throw e;
    }
  }

  /**
   * Cancels a job on behalf of a session.
   *
   * @param sessionId the requesting session
   * @param principal its principal
   * @param jobId the job
   * @param reason why, if given
   * @throws {ArcpError} `JOB_NOT_FOUND` or `PERMISSION_DENIED`
   */
  async cancel(
    sessionId: string,
    principal: string,
    jobId: string,
    reason?: string,
  ): Promise<void> {
    const live = this.#live.get(jobId);
    const job = live?.record ?? await this.#store.getJob(jobId);
    if (!job || job.principal !== principal) {
      throw new ArcpError("JOB_NOT_FOUND", `no job ${jobId}`);
    }
    if (job.session_id !== sessionId) {
      throw new ArcpError(
        "PERMISSION_DENIED",
        "only the session that submitted a job may cancel it",
      );
    }
    if (!live || live.ended || live.cancelling) return;
    this.#cancelLive(live, reason);
  }

  /** Starts cancelling a live job: `job.cancelled`, abort, then kill after the grace period. */
  #cancelLive(live: LiveJob, reason?: string): void {
    if (live.ended || live.cancelling) return;
    live.cancelling = true;
    const job = live.record;
    this.#sinks(job.session_id)?.sendControl("job.cancelled", reason ? { reason } : {}, {
      job_id: job.job_id,
      trace_id: job.trace_id,
    });
    live.run?.abort(reason ?? "cancelled");
    live.timers.push(
      setDeadline(() => this.#end(live, cancelled()), Date.now() + this.#limits.cancelGraceMs),
    );
  }

  /**
   * `ctx.delegate`: checks `agent.delegate`, the caps, expiry, budget and
   * that the child lease is a subset of this job's, then starts the child in
   * the parent's session and resolves with its outcome.
   */
  async #delegate(parent: LiveJob, args: Record<string, unknown>): Promise<unknown> {
    const delegateId = `del_${newUlid()}`;
    const ref = String(args.agent);
    const constraints = (args.lease_constraints ?? undefined) as
      | { expires_at?: unknown }
      | undefined;
    let child: { agent: AgentModule; lease: Lease; expiresAt?: string; budget?: BudgetCounters };
    try {
      const parsed = LeaseSchema.safeParse(args.lease ?? {});
      if (!parsed.success) {
        throw new ArcpError("INVALID_REQUEST", describeZodError(parsed.error, "lease"));
      }
      const agent = this.#agents.resolve(ref);
      const allowed = parent.record.lease["agent.delegate"] ?? [];
      if (
        !matchesAny(allowed, agent.name) && !matchesAny(allowed, `${agent.name}@${agent.version}`)
      ) {
        throw new ArcpError(
          "PERMISSION_DENIED",
          `lease does not grant agent.delegate for ${agent.name}`,
        );
      }
      parent.guard.checkLive();
      if (parent.depth + 1 > this.#limits.maxDelegationDepth) {
        throw new ArcpError(
          "PERMISSION_DENIED",
          `delegation deeper than ${this.#limits.maxDelegationDepth} levels`,
          { cap: "delegation_depth" },
        );
      }
      if (parent.children.size + parent.startingChildren >= this.#limits.maxChildrenPerJob) {
        throw new ArcpError(
          "PERMISSION_DENIED",
          `job already has ${this.#limits.maxChildrenPerJob} live children`,
          { cap: "children" },
        );
      }
      const expires = constraints?.expires_at;
      if (
        expires !== undefined &&
        (typeof expires !== "string" || (parseUtc(expires) ?? 0) <= Date.now())
      ) {
        throw new ArcpError(
          "INVALID_REQUEST",
          "lease_constraints.expires_at: must be RFC 3339 UTC in the future",
        );
      }
      const subset = checkLeaseSubset(
        parent.record.lease,
        parent.budget?.remainingAll(),
        parent.record.lease_constraints?.expires_at,
        parsed.data,
        expires as string | undefined,
      );
      if (!subset.ok) throw subset.error;
      child = {
        agent,
        lease: subset.lease,
        expiresAt: subset.expiresAt,
        budget: subset.budget
          ? new BudgetCounters(new Map(Object.entries(subset.budget)))
          : undefined,
      };
    } catch (err) {
      const e = toArcpError(err);
      this.#emit(
        parent,
        "job.event",
        event("tool_result", { call_id: delegateId, error: e.toPayload() }),
      );
      throw e;
    }
    // Hold the child's slot across the awaits below, so simultaneous
    // delegations cannot all pass the cap; #startChild hands it over to
    // `children` once the child is live.
    parent.startingChildren++;
    const slot = { held: true };
    try {
      return await this.#startChild(parent, delegateId, ref, args, constraints, child, slot);
    } finally {
      if (slot.held) parent.startingChildren--;
    }
  }

  async #startChild(
    parent: LiveJob,
    delegateId: string,
    ref: string,
    args: Record<string, unknown>,
    constraints: { expires_at?: unknown } | undefined,
    child: { agent: AgentModule; lease: Lease; expiresAt?: string; budget?: BudgetCounters },
    slot: { held: boolean },
  ): Promise<unknown> {
    const body: Record<string, unknown> = {
      delegate_id: delegateId,
      agent: ref,
      input: args.input ?? null,
      lease_request: args.lease ?? {},
    };
    if (constraints) body.lease_constraints = constraints;
    await this.#emit(parent, "job.event", event("delegate", body));
    if (parent.ended || parent.cancelling) {
      throw new ArcpError("CANCELLED", "the delegating job ended before its child started");
    }

    const now = Date.now();
    const at = new Date(now).toISOString();
    const p = parent.record;
    const record: JobRecord = {
      job_id: newJobId(),
      principal: p.principal,
      session_id: p.session_id,
      agent: `${child.agent.name}@${child.agent.version}`,
      status: "pending",
      lease: child.lease,
      trace_id: p.trace_id,
      created_at: at,
      created_ms: now,
      accepted_at: at,
      last_event_seq: 0,
      log_length: 0,
      parent_job_id: p.job_id,
      delegate_id: delegateId,
    };
    if (child.expiresAt) record.lease_constraints = { expires_at: child.expiresAt };
    if (child.budget) {
      record.budget = child.budget.initial();
      record.budget_remaining = child.budget.toStored();
    }
    await this.#store.createJob(record);
    const expiresMs = child.expiresAt ? parseUtc(child.expiresAt) : undefined;
    const live: LiveJob = {
      record,
      input: args.input ?? null,
      budget: child.budget,
      guard: new LeaseGuard(child.lease, expiresMs, child.budget, {
        requireModelLease: this.#limits.requireModelLease,
        protectedPaths: this.#protectedPaths,
      }),
      abort: new AbortController(),
      agentUrl: child.agent.url,
      ended: false,
      cancelling: false,
      timers: [],
      subscribers: new Map(),
      depth: parent.depth + 1,
      parent,
      children: new Set(),
      startingChildren: 0,
    };
    const outcome = new Promise<Outcome>((resolve) => (live.settle = resolve));
    this.#live.set(record.job_id, live);
    parent.children.add(live);
    parent.startingChildren--;
    slot.held = false;
    // The parent may have ended while the child's record was being written.
    if (parent.ended || parent.cancelling) live.cancelling = true;
    this.#perPrincipal.set(p.principal, (this.#perPrincipal.get(p.principal) ?? 0) + 1);
    this.#sinks(p.session_id)?.sendControl("job.accepted", acceptedPayload(record), {
      job_id: record.job_id,
      trace_id: record.trace_id,
    });
    if (live.cancelling) void this.#end(live, cancelled());
    else this.#start(live, expiresMs);
    const done = await outcome;
    if (done.status !== "success") throw done.error;
    return live.stream
      ? { result_id: live.stream.resultId, result_size: live.stream.bytes }
      : done.result;
  }

  /** Cost reported by a delegated job is charged to every live ancestor too. */
  #chargeAncestors(live: LiveJob, body: Record<string, unknown>): void {
    for (let p = live.parent; p; p = p.parent) {
      if (p.ended || !p.budget) continue;
      const report = p.budget.applyMetric(
        String(body.name),
        Number(body.value),
        body.unit as string | undefined,
      );
      p.record.budget_remaining = p.budget.toStored();
      if (report) {
        this.#emit(
          p,
          "job.event",
          event("metric", {
            name: "cost.budget.remaining",
            value: report.value,
            unit: report.currency,
          }),
        );
      }
    }
  }

  /**
   * Rotates a live job's credential: a fresh value under the same id, the
   * old one revoked, and `status {phase: "credential_rotated"}` to the job's
   * observers (the value never reaches KV: the logged copy is redacted).
   *
   * @param jobId the job
   * @returns resolves once the new value was sent
   * @throws {ArcpError} `JOB_NOT_FOUND` when the job is not live or has no credential
   */
  async rotateCredentials(jobId: string): Promise<void> {
    const live = this.#live.get(jobId);
    if (!live || live.ended || !this.#credentials) {
      throw new ArcpError("JOB_NOT_FOUND", `no live job ${jobId} with credentials`);
    }
    const job = live.record;
    const credential = await this.#credentials.rotate({
      jobId,
      traceId: job.trace_id,
      lease: job.lease,
      expiresAt: job.lease_constraints?.expires_at,
      budget: job.budget,
    });
    await this.#sendCredential(live, credential, "credential rotated");
  }

  /**
   * The current credentials of a live job.
   *
   * @param jobId the job
   * @returns them, or undefined when the job has none or ended
   */
  credentialsOf(jobId: string): Credential[] | undefined {
    return this.#credentials?.current(jobId);
  }

  /**
   * Sends the current credentials of a session's live jobs again (after a
   * resume: the replayed log holds only redacted copies).
   *
   * @param sessionId the resumed session
   * @returns resolves once sent
   */
  async redeliverCredentials(sessionId: string): Promise<void> {
    if (!this.#credentials) return;
    for (const live of this.#live.values()) {
      if (live.ended || live.record.session_id !== sessionId) continue;
      for (const c of this.#credentials.current(live.record.job_id) ?? []) {
        await this.#sendCredential(live, c, "current credential after resume");
      }
    }
  }

  #sendCredential(live: LiveJob, credential: Credential, message: string): Promise<void> {
    const body = {
      phase: "credential_rotated",
      message,
      credential: { id: credential.id, value: credential.value },
    };
    const redacted = { ...body, credential: { id: credential.id, value: "[redacted]" } };
    return this.#emit(
      live,
      "job.event",
      event("status", body),
      undefined,
      event("status", redacted),
    );
  }

  /**
   * Marks jobs that were running when the process died as failed, in their
   * sessions' logs. Call once at start, after sessions can be restored.
   *
   * @param restore loads a session into memory
   * @returns how many jobs were ended
   */
  async recover(restore: (sessionId: string) => Promise<EventSink | undefined>): Promise<number> {
    let n = 0;
    for await (const job of this.#store.liveJobs()) {
      if (this.#live.has(job.job_id)) continue;
      const sink = await restore(job.session_id);
      const live: LiveJob = {
        record: job,
        input: null,
        agentUrl: "",
        ended: false,
        cancelling: false,
        timers: [],
        guard: new LeaseGuard({}, undefined, undefined),
        abort: new AbortController(),
        subscribers: new Map(),
        depth: 0,
        children: new Set(),
        startingChildren: 0,
      };
      await this.#end(live, {
        status: "error",
        error: new ArcpError("INTERNAL_ERROR", "the runtime stopped while this job was running"),
      }, sink);
      n++;
    }
    return n;
  }

  /**
   * Stops every live job (process shutdown). Their records stay live in KV,
   * so the next start reports them as interrupted.
   */
  stopAll(): void {
    for (const live of this.#live.values()) {
      for (const cancel of live.timers) cancel();
      live.abort.abort();
      live.run?.kill();
    }
    this.#live.clear();
  }

  /**
   * Subscribes a session to a job (same principal only). The session is
   * registered before this resolves, so nothing emitted afterwards is missed;
   * call `replay()` after sending `job.subscribed`.
   *
   * @param sink the subscribing session
   * @param jobId the job
   * @param options history replay
   * @returns the job and the replay step
   * @throws {ArcpError} `JOB_NOT_FOUND` or `PERMISSION_DENIED`
   */
  async subscribe(
    sink: EventSink,
    jobId: string,
    options: SubscribeOptions,
  ): Promise<Subscription> {
    const job = this.#live.get(jobId)?.record ?? await this.#store.getJob(jobId);
    if (!job) throw new ArcpError("JOB_NOT_FOUND", `no job ${jobId}`, { job_id: jobId });
    if (job.principal !== sink.principal) {
      throw new ArcpError(
        "PERMISSION_DENIED",
        "only the submitting principal may observe this job",
        {
          job_id: jobId,
        },
      );
    }
    const live = this.#live.get(jobId);
    const sub: Subscriber = { sink, queue: [] };
    // History holds entries below this mark; everything later lands in the queue.
    let mark = Number.POSITIVE_INFINITY;
    if (live && !live.ended && job.session_id !== sink.sessionId) {
      live.subscribers.set(sink.sessionId, sub);
      mark = live.record.log_length;
    }
    const snapshot = { ...job };
    return {
      job: snapshot,
      replay: async () => {
        if (options.history) await this.#replayHistory(sink, jobId, options.fromEventSeq, mark);
        // Drain until empty; new live envelopes keep queueing meanwhile, so order holds.
        const queue = sub.queue!;
        while (queue.length > 0) {
          await this.#deliverAll(sink, snapshot, queue.splice(0, REPLAY_BATCH));
        }
        delete sub.queue;
      },
    };
  }

  /**
   * Stops delivering a job to a session.
   *
   * @param sessionId the subscribed session
   * @param jobId the job
   */
  unsubscribe(sessionId: string, jobId: string): void {
    this.#live.get(jobId)?.subscribers.delete(sessionId);
  }

  /**
   * Forgets a session that left memory.
   *
   * @param sessionId the session
   */
  dropSession(sessionId: string): void {
    for (const live of this.#live.values()) live.subscribers.delete(sessionId);
  }

  async #replayHistory(
    sink: EventSink,
    jobId: string,
    fromSeq: number,
    mark: number,
  ): Promise<void> {
    // Everything emitted before this point must be in KV before we read it.
    await this.#store.write([]);
    let batch: Array<[SeqType, Record<string, unknown>]> = [];
    let traceId = "";
    for await (const [n, text] of this.#store.jobLog(jobId)) {
      if (n >= mark) break;
      const env = JSON.parse(text) as HistoryEntry;
      if ((env.event_seq ?? 0) <= fromSeq) continue;
      traceId = env.trace_id ?? traceId;
      batch.push([env.type, env.payload]);
      if (batch.length === REPLAY_BATCH) {
        await this.#deliverAll(sink, { job_id: jobId, trace_id: traceId }, batch);
        batch = [];
      }
    }
    if (batch.length > 0) await this.#deliverAll(sink, { job_id: jobId, trace_id: traceId }, batch);
  }

  /**
   * Stamps envelopes for one session, commits them in size-bounded groups,
   * and delivers each group in order once it is durable.
   */
  async #deliverAll(
    sink: EventSink,
    job: { job_id: string; trace_id: string },
    items: Array<[SeqType, Record<string, unknown>]>,
  ): Promise<void> {
    let group: Staged[] = [];
    let chars = 0;
    const flush = async () => {
      if (group.length === 0) return;
      const ready = group;
      group = [];
      chars = 0;
      try {
        await this.#store.write(ready.flatMap((st) => st.writes));
        for (const st of ready) sink.deliver(st);
      } catch (err) {
        sink.fault(err, ready);
      }
    };
    for (const [type, payload] of items) {
      const st = sink.stage(type, job.job_id, job.trace_id || undefined, payload);
      if (!st) continue;
      group.push(st);
      chars += st.text.length;
      if (chars > REPLAY_GROUP_CHARS) await flush();
    }
    await flush();
  }

  #emit(
    live: LiveJob,
    type: SeqType,
    payload: Record<string, unknown>,
    owner = this.#sinks(live.record.session_id),
    logPayload?: Record<string, unknown>,
  ): Promise<void> {
    // Nothing of a job follows its terminal (a tool settling late, a refusal).
    if (live.terminated) return Promise.resolve();
    if (type !== "job.event") live.terminated = true;
    const job = live.record;
    const writes: KvWrite[] = [];
    const deliveries: Array<[EventSink, Staged]> = [];
    const pressured: EventSink[] = [];
    const stageFor = (sink: EventSink) => {
      const staged = sink.stage(type, job.job_id, job.trace_id, payload, logPayload);
      if (!staged) return undefined;
      writes.push(...staged.writes);
      deliveries.push([sink, staged]);
      if (sink.crossedBackPressure()) pressured.push(sink);
      return staged;
    };
    const ownerStaged = owner && !owner.evicted ? stageFor(owner) : undefined;
    if (ownerStaged) job.last_event_seq = ownerStaged.seq;
    // The job's own history keeps every envelope, whatever the owner negotiated.
    const history: HistoryEntry = {
      type,
      job_id: job.job_id,
      trace_id: job.trace_id,
      event_seq: job.last_event_seq,
      payload: logPayload ?? payload,
    };
    writes.push(
      ...this.#store.jobLogWrites(
        job.job_id,
        job.log_length++,
        ownerStaged?.logged ?? JSON.stringify(history),
      ),
    );
    for (const [id, sub] of live.subscribers) {
      if (sub.sink.evicted) live.subscribers.delete(id);
      else if (sub.queue) sub.queue.push([type, logPayload ?? payload]);
      else stageFor(sub.sink);
    }
    writes.push(...this.#store.jobWrites({ ...job }));
    const committed = this.#store.write(writes).then(
      () => {
        for (const [sink, staged] of deliveries) sink.deliver(staged);
      },
      (err) => {
        this.#log.error("commit of a job envelope failed", {
          job_id: job.job_id,
          error: String(err),
        });
        for (const [sink, staged] of deliveries) sink.fault(err, [staged]);
      },
    );
    for (const sink of pressured) this.#signalBackPressure(sink);
    return committed;
  }

  /** Tells every live job feeding a lagging session that it is falling behind. */
  #signalBackPressure(sink: EventSink): void {
    for (const live of this.#live.values()) {
      if (live.ended) continue;
      if (live.record.session_id === sink.sessionId || live.subscribers.has(sink.sessionId)) {
        this.#emit(
          live,
          "job.event",
          event("status", {
            phase: "back_pressure",
            message: "a session reading this job is falling behind",
          }),
        );
      }
    }
  }

  async #end(live: LiveJob, outcome: Outcome, sink?: EventSink): Promise<void> {
    if (live.ended) return;
    live.ended = true;
    live.abort.abort();
    for (const cancel of live.timers) cancel();
    live.run?.kill();
    const job = live.record;
    job.status = outcome.status as JobStatus;
    job.ended_at = nowIso();
    if (this.#live.delete(job.job_id)) {
      const left = (this.#perPrincipal.get(job.principal) ?? 1) - 1;
      if (left > 0) this.#perPrincipal.set(job.principal, left);
      else this.#perPrincipal.delete(job.principal);
    }
    if (outcome.status !== "success") job.error = outcome.error.toPayload();
    live.span?.end(job);
    // Revocation is attempted before the terminal message goes out.
    if (this.#credentials) await this.#credentials.revokeJob(job.job_id);
    for (const child of live.children) this.#cancelLive(child, "parent job ended");
    if (live.parent) live.parent.children.delete(live);
    live.settle?.(outcome);
    if (outcome.status === "success") {
      const payload: Record<string, unknown> = live.stream
        ? {
          final_status: "success",
          result_id: live.stream.resultId,
          result_size: live.stream.bytes,
        }
        : { final_status: "success", result: outcome.result };
      await this.#emit(live, "job.result", payload, sink ?? this.#sinks(job.session_id));
    } else {
      job.error = outcome.error.toPayload();
      await this.#emit(live, "job.error", {
        final_status: outcome.status,
        ...outcome.error.toPayload(),
      }, sink ?? this.#sinks(job.session_id));
    }
  }
}

function cancelled(): Outcome {
  return { status: "cancelled", error: new ArcpError("CANCELLED", "job was cancelled") };
}

function event(kind: string, body: Record<string, unknown>): Record<string, unknown> {
  return { kind, ts: nowIso(), body };
}

/**
 * The `job.accepted` payload of a job.
 *
 * @param job the record
 * @returns the payload
 */
export function acceptedPayload(job: JobRecord): Accepted {
  const p: Accepted = {
    job_id: job.job_id,
    agent: job.agent,
    lease: job.lease,
    accepted_at: job.accepted_at,
    trace_id: job.trace_id,
  };
  if (job.lease_constraints) p.lease_constraints = job.lease_constraints;
  if (job.budget) p.budget = job.budget;
  if (job.parent_job_id) p.parent_job_id = job.parent_job_id;
  if (job.delegate_id) p.delegate_id = job.delegate_id;
  return p;
}
