/**
 * `ArcpClient`: one ARCP session over a web-standard WebSocket. Every
 * inbound frame is handled synchronously, in order, so a handle or
 * subscription is registered before the next frame (its first event) is
 * read.
 *
 * The client is the documented API over four parts: `_connection.ts` owns
 * the socket, the handshake and the checks every envelope passes;
 * `_outbound.ts` sends requests and parks them in `_outstanding.ts`;
 * `_inbound.ts` settles them and feeds the job streams `_job_routes.ts`
 * keeps.
 *
 * @module
 */
import type { ConnectOptions } from "./connect_options.ts";
import { ArcpClientError } from "./errors.ts";
import type { JobHandle } from "./job_handle.ts";
import { type JobEvents, JobStream } from "./job_stream.ts";
import type { JobSubscription } from "./job_subscription.ts";
import type { AgentInfo, JobsPayload, PongPayload, RuntimeInfo } from "./payloads.ts";
import type {
  CancelOutcome,
  ListJobsRequest,
  SubmitRequest,
  SubscribeOptions,
} from "./requests.ts";
import type {
  InputReceipt,
  SendInputOptions,
  TranscriptPagePayload,
  TranscriptRequest,
} from "./job_input.ts";
import { Connection } from "./_connection.ts";
import { Inbound } from "./_inbound.ts";
import { JobRoutes } from "./_job_routes.ts";
import { Outbound } from "./_outbound.ts";
import { Outstanding } from "./_outstanding.ts";

/**
 * An ARCP session.
 *
 * @example
 * ```ts ignore
 * import { ArcpClient } from "./client.ts";
 *
 * await using client = await ArcpClient.connect("ws://127.0.0.1:7777/arcp", { token: "secret" });
 * const job = client.submit({ agent: "echo", input: { hello: "world" } });
 * for await (const event of job.events()) console.log(event.payload.kind);
 * console.log((await job.result).result);
 *
 * // A streamed result: ask for it before reading the events.
 * const big = client.submit({ agent: "chunker", input: { bytes: 100_000 } });
 * const bytes = big.resultBytes();
 * for await (const event of big.events()) console.log(event.payload.kind);
 * console.log((await bytes).length); // 100000
 * ```
 */
export class ArcpClient {
  #connection: Connection;
  #hello = Promise.withResolvers<ArcpClient>();
  #outstanding = new Outstanding();
  #routes = new JobRoutes();
  #inbound: Inbound;
  #outbound: Outbound;
  /** Jobs to follow from the welcome on. */
  #watch: readonly string[];

  private constructor(ws: WebSocket, options: ConnectOptions) {
    this.#watch = options.watch ?? [];
    this.#connection = new Connection(ws, options, {
      welcomed: () => this.#welcomed(),
      envelope: (env) => this.#inbound.handle(env),
      failed: (error) => this.#fail(error),
    });
    const parts = {
      connection: this.#connection,
      outstanding: this.#outstanding,
      routes: this.#routes,
    };
    this.#inbound = new Inbound(parts);
    this.#outbound = new Outbound(parts);
  }

  /**
   * Opens a session: connects, says hello (or resumes), and waits for the
   * welcome.
   *
   * @param url the runtime's WebSocket endpoint, e.g. `ws://127.0.0.1:7777/arcp`
   * @param options token, features, resume
   * @returns the welcomed client
   * @throws {ArcpClientError} with the runtime's code (`UNAUTHENTICATED`,
   *   `RESUME_WINDOW_EXPIRED`, ...) when the hello is refused, or
   *   `CONNECTION_CLOSED` when the socket fails first
   * @example
   * ```ts ignore
   * import { ArcpClient } from "./client.ts";
   * const client = await ArcpClient.connect("ws://127.0.0.1:7777/arcp", { token: "secret" });
   * console.log(client.sessionId, client.agents.map((a) => a.name));
   * await client.close();
   * ```
   */
  static connect(url: string | URL, options: ConnectOptions): Promise<ArcpClient> {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      return Promise.reject(
        new ArcpClientError("INVALID_REQUEST", `cannot open ${url}: ${(err as Error).message}`, {
          cause: err,
        }),
      );
    }
    return new ArcpClient(ws, options).#hello.promise;
  }

  /** The session id from the welcome. */
  get sessionId(): string {
    return this.#connection.session.sessionId;
  }

  /** The newest resume token (a secret: store it, never log it). */
  get resumeToken(): string {
    return this.#connection.session.resumeToken;
  }

  /** How long the session stays resumable after the connection drops (s). */
  get resumeWindowSec(): number {
    return this.#connection.session.resumeWindowSec;
  }

  /** The heartbeat interval (s), when `heartbeat` was negotiated. */
  get heartbeatIntervalSec(): number | undefined {
    return this.#connection.session.heartbeatIntervalSec;
  }

  /** The runtime's name and version. */
  get runtime(): RuntimeInfo {
    return this.#connection.session.runtime;
  }

  /** The negotiated features. */
  get features(): readonly string[] {
    return this.#connection.session.features;
  }

  /** The agents the runtime offers. */
  get agents(): readonly AgentInfo[] {
    return this.#connection.session.agents;
  }

  /** Whether this connection resumed an earlier session. */
  get resumed(): boolean {
    return this.#connection.session.resumed;
  }

  /** The highest `event_seq` received (they arrive gap-free). */
  get lastEventSeq(): number {
    return this.#connection.lastEventSeq;
  }

  /**
   * Submits a job. Never throws: a refusal rejects the handle's `accepted`.
   *
   * @param request agent, input, lease, limits
   * @returns the job's handle, at once
   * @example
   * ```ts ignore
   * import { ArcpClient } from "./client.ts";
   * const client = await ArcpClient.connect("ws://127.0.0.1:7777/arcp", { token: "secret" });
   * const job = client.submit({ agent: "ticker", input: { count: 3 } });
   * console.log((await job.accepted).job_id);
   * console.log(await job.result);
   * ```
   */
  submit(request: SubmitRequest): JobHandle {
    return this.#outbound.submit(request);
  }

  /**
   * Cancels a job. Only the session that submitted it may (after a resume,
   * too); the runtime refuses anyone else.
   *
   * The runtime says nothing when the job has already ended. So that the
   * answer still comes, the client follows the cancel with a one-entry
   * `session.list_jobs` (when `list_jobs` was negotiated): the runtime
   * handles a session's requests in order, so an answer to it with no word
   * on the cancel means there was nothing left to cancel.
   *
   * @param jobId the job
   * @param reason why, for the runtime's records
   * @returns `cancelling` once the runtime sent `job.cancelled`, `ended` when the job had already ended
   * @throws {ArcpClientError} `PERMISSION_DENIED` (another session's job),
   *   `JOB_NOT_FOUND`, or `CONNECTION_CLOSED`
   */
  cancel(jobId: string, reason?: string): Promise<CancelOutcome> {
    return this.#outbound.cancel(jobId, reason);
  }

  /**
   * Sends input to a running job this session submitted (vendor feature
   * `x-arcp-deno.input`; see {@linkcode JobHandle.send}).
   *
   * @param jobId the job
   * @param content the input, any JSON value (may be left out with `end`)
   * @param options `end: true` when no input follows
   * @returns the receipt, once the input is recorded in the job's history
   * @throws {ArcpClientError} the runtime's refusal, or `INVALID_REQUEST`
   *   when the feature was not negotiated
   */
  sendInput(
    jobId: string,
    content: unknown,
    options: SendInputOptions = {},
  ): Promise<InputReceipt> {
    return this.#outbound.sendInput(jobId, content, options);
  }

  /**
   * Reads one page of a job's transcript: its inputs and outputs in order,
   * from a cursor, as long as the runtime keeps its history (vendor feature
   * `x-arcp-deno.input`; the submitting principal only).
   *
   * @param jobId the job
   * @param request cursor (`after`, a page's `next_after`) and page size
   * @returns the page; `next_after` is null once the job ended and the page reached the end
   * @throws {ArcpClientError} `PERMISSION_DENIED`, `JOB_NOT_FOUND`, or
   *   `INVALID_REQUEST` when the feature was not negotiated
   * @example
   * ```ts ignore
   * import { ArcpClient } from "./client.ts";
   * const client = await ArcpClient.connect("ws://127.0.0.1:7777/arcp", { token: "secret" });
   * let after: number | undefined;
   * for (;;) {
   *   const page = await client.transcript("job_01J...", { after });
   *   for (const item of page.items) console.log(item.index, item.type, item.payload.kind);
   *   if (page.next_after === null) break;
   *   after = page.next_after;
   * }
   * ```
   */
  transcript(jobId: string, request: TranscriptRequest = {}): Promise<TranscriptPagePayload> {
    return this.#outbound.transcript(jobId, request);
  }

  /**
   * Lists the jobs this session's principal may observe, one page at a time
   * (feature `list_jobs`).
   *
   * @param request filter, page size and cursor
   * @returns the `session.jobs` payload; pass its `next_cursor` for the next page
   * @throws {ArcpClientError} `INVALID_REQUEST` when `list_jobs` was not
   *   negotiated or the runtime refused the request
   * @example
   * ```ts ignore
   * import { ArcpClient } from "./client.ts";
   * const client = await ArcpClient.connect("ws://127.0.0.1:7777/arcp", { token: "secret" });
   * let cursor: string | null = null;
   * do {
   *   const page = await client.listJobs({ filter: { status: ["running"] }, limit: 50, cursor });
   *   for (const job of page.jobs) console.log(job.job_id, job.status);
   *   cursor = page.next_cursor;
   * } while (cursor);
   * ```
   */
  listJobs(request: ListJobsRequest = {}): Promise<JobsPayload> {
    return this.#outbound.listJobs(request);
  }

  /**
   * Follows a job submitted elsewhere, or earlier (feature `subscribe`).
   * Subscribing never grants cancel authority. For a job that has already
   * ended, ask for `history` to get its terminal message.
   *
   * @param jobId the job
   * @param options history replay
   * @returns the subscription, once the runtime sent `job.subscribed`
   * @throws {ArcpClientError} the runtime's refusal (`PERMISSION_DENIED`,
   *   `JOB_NOT_FOUND`), or `INVALID_REQUEST` when `subscribe` was not negotiated
   */
  subscribe(jobId: string, options: SubscribeOptions = {}): Promise<JobSubscription> {
    return this.#outbound.subscribe(jobId, options);
  }

  /**
   * Follows a job this session receives envelopes for without a handle
   * here: one submitted before a resume, or a delegated child. Sends
   * nothing. Only envelopes that arrive after the call are seen, except for
   * jobs named in `ConnectOptions.watch`, which are followed from the
   * welcome on; a job that already ended here ends its stream at once.
   *
   * @param jobId the job
   * @returns its events and outcome
   * @example
   * ```ts ignore
   * import { ArcpClient } from "./client.ts";
   * const client = await ArcpClient.connect("ws://127.0.0.1:7777/arcp", {
   *   token: "secret",
   *   resume: { sessionId: "sess_01J...", resumeToken: "rt_...", lastEventSeq: 12 },
   *   watch: ["job_01J..."],
   * });
   * console.log(await client.watch("job_01J...").result);
   * ```
   */
  watch(jobId: string): JobEvents {
    const early = this.#routes.takeEarly(jobId);
    if (early) return early;
    const stream = new JobStream();
    if (this.#connection.isOpen) this.#routes.follow(jobId, stream);
    else stream.lose(this.#connection.closedError());
    return stream;
  }

  /**
   * Pings the runtime.
   *
   * @returns the `session.pong` payload
   * @throws {ArcpClientError} `CONNECTION_CLOSED`
   */
  ping(): Promise<PongPayload> {
    return this.#outbound.ping();
  }

  /**
   * Tells the runtime which events were processed (feature `ack`), so it
   * may free them. Advisory: resume still uses `lastEventSeq`.
   *
   * @param seq the highest processed `event_seq`; default {@linkcode lastEventSeq}
   * @returns whether the ack was sent (not when `ack` was not negotiated or the session is closed)
   */
  ack(seq: number = this.lastEventSeq): boolean {
    return this.#outbound.ack(seq);
  }

  /**
   * Says `session.bye` and closes the socket. Jobs keep running and the
   * session stays resumable for its window; whatever is still pending here
   * fails with `CONNECTION_CLOSED`.
   *
   * @param reason why, for the runtime's records
   * @returns resolves once the socket is closed
   */
  async close(reason?: string): Promise<void> {
    if (this.#connection.isOpen) {
      this.#connection.send("session.bye", reason === undefined ? {} : { reason });
    }
    this.#connection.shutdown(
      new ArcpClientError("CONNECTION_CLOSED", "the client closed the session"),
    );
    await this.#connection.closed;
  }

  /**
   * Same as {@linkcode close}, for `await using`.
   *
   * @returns resolves once closed
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #welcomed(): void {
    this.#routes.followEarly(this.#watch);
    this.#hello.resolve(this);
  }

  /** The session ended: the connect (if still waiting) and everything pending fail. */
  #fail(error: ArcpClientError): void {
    this.#hello.reject(error);
    this.#outstanding.lose(error);
    this.#routes.loseAll(error);
  }
}
