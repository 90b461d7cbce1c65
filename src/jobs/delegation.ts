/**
 * `ctx.delegate`: a job starting a child job in its own session, under a
 * lease that is a subset of its own, within the depth and fan-out caps.
 * It reaches the rest of the jobs layer only through
 * {@linkcode DelegationPort}.
 *
 * @module
 */
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import { newUlid } from "../protocol/ids.ts";
import { type Lease, LeaseSchema } from "../protocol/lease.ts";
import { describeZodError } from "../protocol/envelope.ts";
import { parseUtc } from "../protocol/time.ts";
import { MAX_NESTING_DEPTH, nestsDeeperThan } from "../protocol/nesting.ts";
import type { AgentModule, AgentRegistry } from "../sandbox/registry.ts";
import type { JobRecord } from "../store/records.ts";
import type { LeaseGuardOptions } from "../lease/guard.ts";
import { BudgetCounters } from "../lease/budget.ts";
import { checkLeaseSubset } from "../lease/subset.ts";
import { matchesAny } from "../lease/glob.ts";
import type { JobLimits } from "./limits.ts";
import {
  cancelled,
  type EndJob,
  type LiveJob,
  newLiveJob,
  type Outcome,
  type StartJob,
} from "./live_job.ts";
import type { EmitEvent } from "./fanout.ts";
import { newJobRecord } from "./admission.ts";

/** What delegation needs of the jobs layer. */
export interface DelegationPort {
  /** The agent inventory. */
  agents: AgentRegistry;
  /** Lease policy of every job's guard. */
  policy: LeaseGuardOptions;
  /** The sandbox's refusal of leases it cannot honour (`Sandbox.checkLease`). */
  checkLease: (lease: Lease) => void;
  /** Emits a `job.event`. */
  event: EmitEvent;
  /**
   * Writes a new job's record.
   *
   * @param record the child's record
   * @returns resolves once written
   */
  create(record: JobRecord): Promise<unknown>;
  /**
   * Makes a child live and tells its session with `job.accepted`.
   *
   * @param live the child, its record written
   */
  accept(live: LiveJob): void;
  /** Starts a live job's agent. */
  start: StartJob;
  /** Ends a job. */
  end: EndJob;
}

/** A child that passed the checks. */
interface ChildPlan {
  agent: AgentModule;
  lease: Lease;
  expiresAt?: string;
  budget?: BudgetCounters;
}

/** Runs `ctx.delegate` calls. */
export class Delegation {
  #port: DelegationPort;
  #limits: JobLimits;

  /**
   * @param port what delegation needs of the jobs layer
   * @param limits tunables (depth and children caps)
   */
  constructor(port: DelegationPort, limits: JobLimits) {
    this.#port = port;
    this.#limits = limits;
  }

  /**
   * `ctx.delegate`: checks `agent.delegate`, the caps, expiry, budget and
   * that the child lease is a subset of this job's, then starts the child in
   * the parent's session and resolves with its outcome.
   *
   * @param parent the delegating job
   * @param args the agent's `delegate` call
   * @returns the child's result (or its streamed result's id and size)
   * @throws {ArcpError} the refusal, or the child's error
   */
  async delegate(parent: LiveJob, args: Record<string, unknown>): Promise<unknown> {
    const delegateId = `del_${newUlid()}`;
    const constraints = (args.lease_constraints ?? undefined) as
      | { expires_at?: unknown }
      | undefined;
    let child: ChildPlan;
    try {
      child = this.#plan(parent, String(args.agent), args.input, args.lease, constraints);
    } catch (err) {
      const e = toArcpError(err);
      this.#port.event(parent, "tool_result", { call_id: delegateId, error: e.toPayload() });
      throw e;
    }
    // Hold the child's slot across the awaits below, so simultaneous
    // delegations cannot all pass the cap; #startChild hands it over to
    // `children` once the child is live.
    parent.startingChildren++;
    const slot = { held: true };
    try {
      return await this.#startChild(parent, delegateId, args, constraints, child, slot);
    } finally {
      if (slot.held) parent.startingChildren--;
    }
  }

  /** The checks a delegation must pass before anything is written. */
  #plan(
    parent: LiveJob,
    ref: string,
    input: unknown,
    requested: unknown,
    constraints: { expires_at?: unknown } | undefined,
  ): ChildPlan {
    if (nestsDeeperThan(input, MAX_NESTING_DEPTH)) {
      throw new ArcpError(
        "INVALID_REQUEST",
        `delegate input nests objects or arrays deeper than ${MAX_NESTING_DEPTH} levels`,
        { cap: "input_depth", limit: MAX_NESTING_DEPTH },
      );
    }
    const parsed = LeaseSchema.safeParse(requested ?? {});
    if (!parsed.success) {
      throw new ArcpError("INVALID_REQUEST", describeZodError(parsed.error, "lease"));
    }
    const agent = this.#port.agents.resolve(ref);
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
    this.#port.checkLease(subset.lease);
    return {
      agent,
      lease: subset.lease,
      expiresAt: subset.expiresAt,
      budget: subset.budget
        ? new BudgetCounters(new Map(Object.entries(subset.budget)))
        : undefined,
    };
  }

  async #startChild(
    parent: LiveJob,
    delegateId: string,
    args: Record<string, unknown>,
    constraints: { expires_at?: unknown } | undefined,
    child: ChildPlan,
    slot: { held: boolean },
  ): Promise<unknown> {
    const body: Record<string, unknown> = {
      delegate_id: delegateId,
      agent: String(args.agent),
      input: args.input ?? null,
      lease_request: args.lease ?? {},
    };
    if (constraints) body.lease_constraints = constraints;
    await this.#port.event(parent, "delegate", body);
    if (parent.ended || parent.cancelling) {
      throw new ArcpError("CANCELLED", "the delegating job ended before its child started");
    }

    const p = parent.record;
    const record = newJobRecord({
      principal: p.principal,
      sessionId: p.session_id,
      agent: child.agent,
      lease: child.lease,
      traceId: p.trace_id,
      now: Date.now(),
      expiresAt: child.expiresAt,
      budget: child.budget,
      delegation: { parentJobId: p.job_id, delegateId },
    });
    const expiresMs = child.expiresAt ? parseUtc(child.expiresAt) : undefined;
    const live = newLiveJob({
      record,
      input: args.input,
      agentUrl: child.agent.url,
      sharing: child.agent.sharing,
      expiresMs,
      budget: child.budget,
      parent,
      policy: this.#port.policy,
    });
    await this.#port.create(record);
    const outcome = new Promise<Outcome>((resolve) => (live.settle = resolve));
    parent.children.add(live);
    parent.startingChildren--;
    slot.held = false;
    // The parent may have ended while the child's record was being written.
    if (parent.ended || parent.cancelling) {
      live.cancelling = true;
      live.cancelReason = "parent job ended";
    }
    this.#port.accept(live);
    if (live.cancelling) void this.#port.end(live, cancelled(live));
    else this.#port.start(live, expiresMs);
    const done = await outcome;
    if (done.status !== "success") throw done.error;
    return live.stream
      ? { result_id: live.stream.resultId, result_size: live.stream.bytes }
      : done.result;
  }
}
