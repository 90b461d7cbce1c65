/**
 * Answering a session's `job.subscribe`: every decision, granted or not,
 * goes to the audit log, and a granted one yields the `job.subscribed`
 * payload describing the job as the subscriber first sees it.
 *
 * @module
 */
import { toArcpError } from "../protocol/errors.ts";
import { newUlid } from "../protocol/ids.ts";
import type { Subscribed } from "../protocol/messages.ts";
import type { JobRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import type { Credential } from "../credentials/credentials.ts";
import type { EventSink } from "./sink.ts";
import type { Fanout, Subscription } from "./fanout.ts";

/** A decoded `job.subscribe` payload. */
export interface SubscribeRequest {
  /** The job to watch. */
  job_id: string;
  /** Replay the job's history first. */
  history?: boolean;
  /** Replay envelopes whose owner-session seq is above this. */
  from_event_seq?: number;
}

/** A granted `job.subscribe`. */
export interface GrantedSubscription extends Subscription {
  /** The `job.subscribed` payload; send it before calling `replay()`. */
  payload: Subscribed;
}

/** What answering a subscribe needs of the jobs layer. */
export interface SubscriptionDeps {
  /** Where the decision is logged and an ended job is looked up. */
  store: Store;
  /** Registers the subscriber. */
  fanout: Fanout;
  /**
   * The current credentials of a live job.
   *
   * @param jobId the job
   * @returns them, or undefined when it has none
   */
  credentialsOf(jobId: string): Credential[] | undefined;
}

/**
 * Subscribes a session to a job on its request, auditing the decision.
 *
 * @param deps the store, fan-out and credentials
 * @param sink the subscribing session
 * @param request the decoded `job.subscribe` payload
 * @param subscribedFrom reads the session's latest `event_seq`, for `subscribed_from`
 * @returns the `job.subscribed` payload and the replay step
 * @throws {ArcpError} `JOB_NOT_FOUND` or `PERMISSION_DENIED`, once audited
 */
export async function answerSubscribe(
  deps: SubscriptionDeps,
  sink: EventSink,
  request: SubscribeRequest,
  subscribedFrom: () => number,
): Promise<GrantedSubscription> {
  const audit = {
    id: newUlid(),
    at: Date.now(),
    subscriber_principal: sink.principal,
    subscriber_session: sink.sessionId,
    job_id: request.job_id,
  };
  let sub;
  try {
    sub = await deps.fanout.subscribe(sink, request.job_id, {
      history: request.history ?? false,
      fromEventSeq: request.from_event_seq ?? 0,
    });
  } catch (err) {
    const e = toArcpError(err);
    const owner = await deps.store.getJob(request.job_id);
    await deps.store.write([
      deps.store.auditWrite({ ...audit, owner_principal: owner?.principal, decision: e.code }),
    ]);
    throw e;
  }
  await deps.store.write([
    deps.store.auditWrite({ ...audit, owner_principal: sub.job.principal, decision: "granted" }),
  ]);
  const payload = subscribedPayload(sub.job, subscribedFrom(), request.history ?? false);
  // Credentials follow the submitter only (subscribers are the same principal by policy).
  const credentials = sub.job.principal === sink.principal
    ? deps.credentialsOf(sub.job.job_id)
    : undefined;
  if (credentials) payload.credentials = credentials;
  return { ...sub, payload };
}

/**
 * The `job.subscribed` payload of a job.
 *
 * @param job the job as subscribed
 * @param subscribedFrom the subscriber's latest `event_seq`
 * @param replayed whether history is replayed
 * @returns the payload, without credentials
 */
function subscribedPayload(job: JobRecord, subscribedFrom: number, replayed: boolean): Subscribed {
  const payload: Subscribed = {
    job_id: job.job_id,
    current_status: job.status,
    agent: job.agent,
    lease: job.lease,
    parent_job_id: job.parent_job_id ?? null,
    trace_id: job.trace_id,
    subscribed_from: subscribedFrom,
    replayed,
  };
  if (job.lease_constraints) payload.lease_constraints = job.lease_constraints;
  if (job.budget_remaining) {
    payload.budget = Object.fromEntries(
      Object.entries(job.budget_remaining).map(([c, v]) => [c, Number(v)]),
    );
  }
  return payload;
}
