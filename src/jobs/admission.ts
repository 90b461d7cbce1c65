/**
 * Admitting jobs: the checks a submit must pass, idempotent resubmits
 * answered from the job they first created, credentials issued no later
 * than `job.accepted`, and the one way a job record is built, for submitted
 * and delegated jobs alike.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { newJobId, newTraceId, sha256Hex } from "../protocol/ids.ts";
import { isoTime } from "../protocol/time.ts";
import type { Accepted, Submit } from "../protocol/messages.ts";
import type { Lease } from "../protocol/lease.ts";
import type { AgentModule, AgentRegistry } from "../sandbox/registry.ts";
import type { Store } from "../store/store.ts";
import type { JobRecord } from "../store/records.ts";
import type { KvWrite } from "../store/large_value.ts";
import type { CredentialService } from "../credentials/credentials.ts";
import type { LeaseGuardOptions } from "../lease/guard.ts";
import { BudgetCounters } from "../lease/budget.ts";
import type { EventSink } from "./sink.ts";
import type { JobLimits } from "./limits.ts";
import type { JobTable } from "./job_table.ts";
import { type LiveJob, newLiveJob, type StartJob } from "./live_job.ts";
import { PendingRecord } from "./pending_record.ts";
import { checkExpiry, checkInput, paramsHash } from "./submit_check.ts";

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
  /**
   * Starts the job. Absent for a replay. Without `announce`, call it and
   * send `job.accepted` right after (its record is committed already).
   */
  start?: () => void;
  /**
   * For a job started ahead of its record's commit (an early start): sends
   * `job.accepted` through `send` once the record is durable. Call it right
   * after `start`. Rejects with the submit's refusal when the record could
   * not be committed; the job is stopped then and nothing of it was sent.
   */
  announce?: (send: () => void) => Promise<void>;
}

/** An idempotent submit: the key's hash and the hash of what it was used with. */
interface Idempotency {
  keyHash: string;
  paramsHash: string;
}

/** What {@linkcode newJobRecord} builds a record from. */
export interface JobRecordInit {
  /** Who owns the job. */
  principal: string;
  /** The session its envelopes go to. */
  sessionId: string;
  /** The agent it runs. */
  agent: AgentModule;
  /** The effective lease. */
  lease: Lease;
  /** The job's trace id. */
  traceId: string;
  /** When it was accepted (epoch ms). */
  now: number;
  /** `lease_constraints.expires_at`, if any. */
  expiresAt?: string;
  /** Budget counters, when the lease has `cost.budget`. */
  budget?: BudgetCounters;
  /** The delegating job and the delegation's id, for a delegated job. */
  delegation?: { parentJobId: string; delegateId: string };
  /** `max_runtime_sec`, if any. */
  maxRuntimeSec?: number;
  /** The idempotency key's hash, for an idempotent submit. */
  idempotencyHash?: string;
}

/**
 * The record of a newly accepted job.
 *
 * @param init what the job is
 * @returns a pending job's record, with a fresh job id
 */
export function newJobRecord(init: JobRecordInit): JobRecord {
  const at = isoTime(init.now);
  const record: JobRecord = {
    job_id: newJobId(),
    principal: init.principal,
    session_id: init.sessionId,
    agent: `${init.agent.name}@${init.agent.version}`,
    status: "pending",
    lease: init.lease,
    trace_id: init.traceId,
    created_at: at,
    created_ms: init.now,
    accepted_at: at,
    last_event_seq: 0,
    log_length: 0,
  };
  if (init.delegation) {
    record.parent_job_id = init.delegation.parentJobId;
    record.delegate_id = init.delegation.delegateId;
  }
  if (init.expiresAt) record.lease_constraints = { expires_at: init.expiresAt };
  if (init.budget) {
    record.budget = init.budget.initial();
    record.budget_remaining = init.budget.toStored();
  }
  if (init.maxRuntimeSec) record.max_runtime_sec = init.maxRuntimeSec;
  if (init.idempotencyHash) record.idempotency_hash = init.idempotencyHash;
  return record;
}

/**
 * The `job.accepted` payload of a job.
 *
 * @example
 * ```ts ignore
 * session.sendControl("job.accepted", acceptedPayload(record), { job_id: record.job_id });
 * ```
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

/** What admission needs. */
export interface AdmissionDeps {
  /** Where jobs and idempotency keys are kept. */
  store: Store;
  /** The agent inventory. */
  agents: AgentRegistry;
  /** Issues provisioned credentials, when configured. */
  credentials: CredentialService | undefined;
  /** The live jobs. */
  live: JobTable;
  /** Lease policy of every job's guard. */
  policy: LeaseGuardOptions;
  /** The sandbox's refusal of leases it cannot honour (`Sandbox.checkLease`). */
  checkLease: (lease: Lease) => void;
  /**
   * The sandbox's refusal of a job it could not start soon
   * (`Sandbox.checkCapacity`): a retryable `sandbox_busy` at submit.
   */
  checkCapacity?: (agent: AgentModule) => void;
  /** Starts an admitted job. */
  start: StartJob;
  /** A principal's live-job cap when it is not `maxJobsPerPrincipal` (anonymous principals). */
  jobCap?: (principal: string) => number | undefined;
  /** The node that runs the jobs it admits. */
  owner: { node_id: string; node_run: string };
  /** Whether other nodes share the KV: caps are then held in KV as well. */
  shared: () => boolean;
  /** The runtime log's entry of an accepted job: writes committed with its record. */
  journal?: (job: JobRecord) => KvWrite[];
  /**
   * How long to hold an early-started job's record for the job's first
   * envelope to carry it (ms; see `AcceptHold`).
   */
  holdFor?: (agentKey: string) => number;
  /** Stops a job whose record could not be committed: nothing of it is sent. */
  discard: (live: LiveJob) => void;
}

/** Accepts or rejects submits. */
export class Admission {
  #deps: AdmissionDeps;
  #limits: JobLimits;
  /** Records of early-started jobs whose `job.accepted` is not yet sent. */
  #pending = new Set<PendingRecord>();

  /**
   * @param deps the store, agents, credentials, live jobs, policy and how to start a job
   * @param limits tunables
   */
  constructor(deps: AdmissionDeps, limits: JobLimits) {
    this.#deps = deps;
    this.#limits = limits;
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
    const agent = this.#deps.agents.resolve(submit.agent);
    const expiresMs = checkExpiry(submit, now);
    checkInput(submit);
    this.#deps.checkLease(submit.lease_request ?? {});

    // Taken before the first await: a cap checked here and counted later let
    // concurrent submits all through. At the cap, only a replay may pass.
    const cap = this.#deps.jobCap?.(principal) ?? this.#limits.maxJobsPerPrincipal;
    const release = this.#deps.live.tryReserve(principal, cap);
    try {
      return await this.#admit(who, submit, agent, expiresMs, now, cap, release);
    } finally {
      // A job made live took its slot over already (`JobTable.add`): this frees a refused one's.
      release?.();
    }
  }

  /**
   * Waits until every early-started job's record queued or held so far is
   * committed (or refused), each hold cut short: whatever reads job records
   * from KV after this finds every job whose `job.accepted` went out before.
   *
   * @returns resolves once they are settled
   */
  async recordsSettled(): Promise<void> {
    if (this.#pending.size === 0) return;
    const all = [...this.#pending];
    for (const pending of all) pending.queue();
    await Promise.allSettled(all.map((p) => p.committed));
  }

  /** The rest of {@linkcode submit}, with a slot under `cap` held when `slot` is set. */
  async #admit(
    who: Submitter,
    submit: Submit,
    agent: AgentModule,
    expiresMs: number | undefined,
    now: number,
    cap: number,
    slot: (() => void) | undefined,
  ): Promise<Submission> {
    const { store, credentials: service } = this.#deps;
    const principal = who.sink.principal;
    let idem: Idempotency | undefined;
    if (submit.idempotency_key !== undefined) {
      idem = {
        keyHash: await sha256Hex(submit.idempotency_key),
        paramsHash: await paramsHash(submit),
      };
      const replay = await this.#findIdempotent(principal, idem);
      if (replay) return replay;
    }
    if (!slot) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `principal has ${cap} live jobs, the most allowed`,
        { cap: "concurrent_jobs", limit: cap },
      );
    }
    // Overload is refused here, before acceptance, not left to wait for a worker.
    this.#deps.checkCapacity?.(agent);

    const lease = submit.lease_request ?? {};
    const budget = BudgetCounters.fromLease(lease);
    const record = newJobRecord({
      principal,
      sessionId: who.sink.sessionId,
      agent,
      lease,
      traceId: who.traceId ?? newTraceId(),
      now,
      expiresAt: submit.lease_constraints?.expires_at,
      budget,
      maxRuntimeSec: submit.max_runtime_sec,
      idempotencyHash: idem?.keyHash,
    });
    Object.assign(record, this.#deps.owner);
    const jobId = record.job_id;

    // Issued no later than job.accepted, and only to sessions that negotiated it.
    const credentials = service && who.sink.has("provisioned_credentials")
      ? await service.issue({
        jobId,
        traceId: record.trace_id,
        lease,
        expiresAt: record.lease_constraints?.expires_at,
        budget: record.budget,
      })
      : undefined;
    const live = newLiveJob({
      record,
      input: submit.input,
      agentUrl: agent.url,
      sharing: agent.sharing,
      expiresMs,
      budget,
      policy: this.#deps.policy,
    });
    const accepted = acceptedPayload(record);
    if (credentials) accepted.credentials = credentials;
    const start = () => this.#deps.start(live, expiresMs);
    const shared = this.#deps.shared();
    if (!idem && !shared) {
      // Nothing to claim: the job starts now, its record's commit on the way.
      store.assertWritable();
      const announce = this.#startEarly(live, slot);
      return {
        accepted,
        start,
        announce: async (send) => {
          try {
            await announce(send);
          } catch (err) {
            if (credentials) await service!.revokeJob(jobId);
            throw err;
          }
        },
      };
    }
    let created: boolean;
    try {
      created = await store.createJob(
        record,
        idem && {
          principal,
          keyHash: idem.keyHash,
          record: { job_id: jobId, params_hash: idem.paramsHash },
          ttlMs: this.#limits.idempotencyTtlMs,
        },
        shared ? { principal, limit: cap } : undefined,
      );
    } catch (err) {
      // Nothing was accepted: the credential must not outlive the failed submit.
      if (credentials) await service!.revokeJob(jobId);
      throw err;
    }
    if (!created) {
      if (credentials) await service!.revokeJob(jobId);
      // Another submit claimed the key between our read and our write.
      const replay = await this.#findIdempotent(principal, idem!);
      if (replay) return replay;
      throw new ArcpError("INTERNAL_ERROR", "idempotency key changed hands during submit; retry");
    }
    // A claim awaits reads first, so the journal's entry is numbered and
    // queued once the claim succeeded, in one step.
    const writes = this.#deps.journal?.(record) ?? [];
    if (writes.length > 0) store.write(writes, { failFast: true }).catch(() => {});
    this.#deps.live.add(live, slot);
    return { accepted, start };
  }

  /**
   * Makes a job live ahead of its record's commit: the record is queued now,
   * or held for the job's first envelope to carry it when the agent's jobs
   * end fast (see `AcceptHold`), with the runtime log's entry numbered and
   * queued in the same step as the record.
   *
   * @returns sends `job.accepted` once the record is durable (see `Submission.announce`)
   */
  #startEarly(live: LiveJob, slot: (() => void) | undefined): (send: () => void) => Promise<void> {
    const { store } = this.#deps;
    const record = live.record;
    const pending = new PendingRecord(
      // A copy: the live record changes as the job runs, and a record queued
      // alone must say what it said when it was built (its index entries do).
      () => {
        const built = { ...record };
        return { record: () => store.jobWrites(built), rides: this.#deps.journal?.(record) ?? [] };
      },
      (writes, onDurable) => store.write(writes, { failFast: true, onDurable }),
    );
    live.pendingRecord = pending;
    this.#pending.add(pending);
    // Its slot becomes its live count in one step, before the job can start
    // (let alone end): no path can reach its terminal with the slot still held.
    this.#deps.live.add(live, slot);
    const hold = this.#deps.holdFor?.(record.agent) ?? 0;
    if (hold > 0) pending.hold(hold);
    else pending.queue();
    return async (send) => {
      try {
        await pending.announce(send);
      } catch (err) {
        this.#deps.discard(live);
        throw err;
      } finally {
        this.#pending.delete(pending);
        live.pendingRecord = undefined;
      }
    };
  }

  /**
   * The answer to a resubmit of an idempotency key: the job it first
   * created, or undefined when the key is unused (or its job is gone).
   */
  async #findIdempotent(principal: string, idem: Idempotency): Promise<Submission | undefined> {
    const existing = await this.#deps.store.getIdempotency(principal, idem.keyHash);
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
    const job = this.#deps.live.get(existing.job_id)?.record ??
      await this.#deps.store.getJob(existing.job_id);
    if (!job) return undefined;
    // A replay never re-issues; it carries the original credentials while the job is live.
    const accepted = acceptedPayload(job);
    const credentials = this.#deps.credentials?.current(job.job_id);
    if (credentials) accepted.credentials = credentials;
    return { accepted };
  }
}
