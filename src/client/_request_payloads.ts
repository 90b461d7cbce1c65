/**
 * The caller's requests, as the wire spells them: camelCase options become
 * the protocol's snake_case payloads, and what was not given is left out
 * rather than sent as undefined.
 *
 * @module
 */
import type { ListJobs, Submit, Subscribe } from "../protocol/messages.ts";
import type { ListJobsRequest, SubmitRequest, SubscribeOptions } from "./requests.ts";

/**
 * The `job.submit` payload of a request.
 *
 * @param request agent, input, lease, limits
 * @returns the payload
 */
export function submitPayload(request: SubmitRequest): Submit {
  const payload: Submit = { agent: request.agent, input: request.input };
  if (request.leaseRequest) payload.lease_request = request.leaseRequest;
  if (request.leaseConstraints) {
    payload.lease_constraints = request.leaseConstraints.expiresAt === undefined
      ? {}
      : { expires_at: request.leaseConstraints.expiresAt };
  }
  if (request.idempotencyKey !== undefined) payload.idempotency_key = request.idempotencyKey;
  if (request.maxRuntimeSec !== undefined) payload.max_runtime_sec = request.maxRuntimeSec;
  return payload;
}

/**
 * The `session.list_jobs` payload of a request.
 *
 * @param request filter, page size and cursor
 * @returns the payload
 */
export function listJobsPayload(request: ListJobsRequest): ListJobs {
  const filter: NonNullable<ListJobs["filter"]> = {};
  const f = request.filter ?? {};
  if (f.status !== undefined) filter.status = f.status;
  if (f.agent !== undefined) filter.agent = f.agent;
  if (f.createdAfter !== undefined) filter.created_after = f.createdAfter;
  if (f.createdBefore !== undefined) filter.created_before = f.createdBefore;
  const payload: ListJobs = {};
  if (request.filter) payload.filter = filter;
  if (request.limit !== undefined) payload.limit = request.limit;
  if (request.cursor !== undefined) payload.cursor = request.cursor;
  return payload;
}

/**
 * The `job.subscribe` payload for a job.
 *
 * @param jobId the job
 * @param options history replay
 * @returns the payload
 */
export function subscribePayload(jobId: string, options: SubscribeOptions): Subscribe {
  const payload: Subscribe = { job_id: jobId };
  if (options.fromEventSeq !== undefined) payload.from_event_seq = options.fromEventSeq;
  if (options.history !== undefined) payload.history = options.history;
  return payload;
}
