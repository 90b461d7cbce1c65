/**
 * A client for ARCP v1.1 runtimes over WebSocket: open a session, submit
 * jobs and follow their events, cancel, list, subscribe, resume.
 *
 * Every submit carries a trace id (minted when not given), and the runtime's
 * answer is matched by it. Inbound messages are checked against the
 * protocol's schemas; malformed ones are dropped. `event_seq` is checked for
 * gaps: a gap breaks the session (see {@linkcode ConnectOptions.onGap}).
 *
 * @example
 * ```ts ignore
 * import { ArcpClient, JobFailedError } from "@arcp/runtime/client";
 *
 * await using client = await ArcpClient.connect("ws://127.0.0.1:7777/arcp", {
 *   token: Deno.env.get("ARCP_TOKEN")!,
 * });
 * const job = client.submit({ agent: "ticker", input: { count: 3 } });
 * for await (const event of job.events()) {
 *   if (event.payload.kind === "progress") console.log(event.payload.body);
 * }
 * try {
 *   console.log((await job.result).result);
 * } catch (err) {
 *   if (err instanceof JobFailedError) console.error(err.finalStatus, err.code, err.message);
 *   else throw err;
 * }
 * ```
 *
 * @module
 */
export {
  ArcpClient,
  type ConnectOptions,
  DEFAULT_FEATURES,
  type ResumeOptions,
  type SequenceGap,
} from "./client.ts";
export {
  ArcpClientError,
  type ArcpClientErrorOptions,
  type ClientErrorCode,
  ERROR_CODES,
  type ErrorCode,
  type FailedStatus,
  JobFailedError,
  SubmitRejectedError,
} from "./errors.ts";
export type { JobHandle } from "./job_handle.ts";
export type { JobEvents } from "./job_stream.ts";
export type { JobSubscription } from "./job_subscription.ts";
export type {
  AcceptedPayload,
  AgentInfo,
  Credential,
  JobEventEnvelope,
  JobEventPayload,
  JobListEntry,
  JobResultPayload,
  JobsPayload,
  JobStatus,
  Lease,
  LeaseConstraints,
  PongPayload,
  RuntimeInfo,
  SubscribedPayload,
} from "./payloads.ts";
export type {
  CancelOutcome,
  ListJobsRequest,
  SubmitRequest,
  SubscribeOptions,
} from "./requests.ts";
