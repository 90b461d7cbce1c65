/**
 * A client for ARCP v1.1 runtimes over WebSocket: open a session, submit
 * jobs and follow their events, cancel, list, subscribe, resume.
 *
 * Every submit carries a trace id (minted when not given), and the runtime's
 * answer is matched by it. Inbound messages are checked against the
 * protocol's schemas; malformed ones are dropped. `event_seq` is checked for
 * gaps: a gap breaks the session (see {@linkcode ConnectOptions.onGap}).
 *
 * A job that streams its result (`result_chunk` events, ARCP §5.6) ends with
 * a `job.result` that carries `result_id` and `result_size` instead of
 * `result`; {@linkcode JobEvents.resultBytes} and
 * {@linkcode JobEvents.resultText} reassemble it. Chunks are collected only
 * for a caller that asked before reading them from `events()`.
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
 * @example
 * ```ts ignore
 * import { ArcpClient } from "@arcp/runtime/client";
 *
 * await using client = await ArcpClient.connect("ws://127.0.0.1:7777/arcp", {
 *   token: Deno.env.get("ARCP_TOKEN")!,
 * });
 * const job = client.submit({ agent: "chunker", input: { bytes: 200_000, chunk_bytes: 16_384 } });
 * const text = await job.resultText();
 * console.log(text.length, (await job.result).result_size); // 200000 200000
 * ```
 *
 * @module
 */
export { ArcpClient } from "./client.ts";
export {
  type ConnectOptions,
  DEFAULT_FEATURES,
  type ResumeOptions,
  type SequenceGap,
} from "./connect_options.ts";
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
export type {
  InputReceipt,
  SendInputOptions,
  TranscriptItem,
  TranscriptPagePayload,
  TranscriptRequest,
} from "./job_input.ts";
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
  ResultChunkBody,
  RuntimeInfo,
  SubscribedPayload,
} from "./payloads.ts";
export type {
  CancelOutcome,
  ListJobsRequest,
  SubmitRequest,
  SubscribeOptions,
} from "./requests.ts";
