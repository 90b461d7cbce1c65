/**
 * `ArcpClient`: one ARCP session over a web-standard WebSocket. Every
 * inbound frame is handled synchronously, in order, so a handle or
 * subscription is registered before the next frame (its first event) is
 * read.
 *
 * @module
 */
import { encodeEnvelope } from "../protocol/encode.ts";
import { type Envelope, TRACE_ID } from "../protocol/envelope.ts";
import type { Feature } from "../protocol/features.ts";
import { newTraceId, newUlid } from "../protocol/ids.ts";
import type { MessageType, Payloads } from "../protocol/messages.ts";
import { nowIso } from "../protocol/time.ts";
import type { ConnectOptions } from "./connect_options.ts";
import * as decode from "./decode.ts";
import { ArcpClientError, JobFailedError, sessionError, SubmitRejectedError } from "./errors.ts";
import { type JobHandle, SubmittedJob } from "./job_handle.ts";
import { type JobEvents, JobStream } from "./job_stream.ts";
import { type JobSubscription, Subscription } from "./job_subscription.ts";
import { type JobOutcome, JobRoutes } from "./_job_routes.ts";
import { Outstanding } from "./_outstanding.ts";
import { EventSequence } from "./_event_sequence.ts";
import { answerToHello, helloPayload, NO_SESSION, type SessionInfo } from "./_handshake.ts";
import { listJobsPayload, submitPayload, subscribePayload } from "./_request_payloads.ts";
import type {
  AgentInfo,
  JobResultPayload,
  JobsPayload,
  PongPayload,
  RuntimeInfo,
} from "./payloads.ts";
import type {
  CancelOutcome,
  ListJobsRequest,
  SubmitRequest,
  SubscribeOptions,
} from "./requests.ts";

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
  #ws: WebSocket;
  #options: ConnectOptions;
  #state: "connecting" | "open" | "closing" | "closed" = "connecting";
  #hello = Promise.withResolvers<ArcpClient>();
  #closed = Promise.withResolvers<void>();
  #failure: ArcpClientError | undefined;
  #lastSessionError: ArcpClientError | undefined;
  #socketError = "";

  #session: SessionInfo = NO_SESSION;
  #sequence = new EventSequence(0);

  #outstanding = new Outstanding();
  #routes = new JobRoutes();
  /** Streams of `ConnectOptions.watch`, until `watch()` hands them out. */
  #watched = new Map<string, JobStream>();

  private constructor(ws: WebSocket, options: ConnectOptions) {
    this.#ws = ws;
    this.#options = options;
    ws.onopen = () => this.#sendHello();
    ws.onmessage = (e: MessageEvent) => {
      if (typeof e.data === "string") this.#onFrame(e.data);
    };
    ws.onerror = (e: Event) => {
      this.#socketError = e instanceof ErrorEvent ? e.message : "socket error";
    };
    ws.onclose = (e: CloseEvent) => this.#onClose(e);
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
    return this.#session.sessionId;
  }

  /** The newest resume token (a secret: store it, never log it). */
  get resumeToken(): string {
    return this.#session.resumeToken;
  }

  /** How long the session stays resumable after the connection drops (s). */
  get resumeWindowSec(): number {
    return this.#session.resumeWindowSec;
  }

  /** The heartbeat interval (s), when `heartbeat` was negotiated. */
  get heartbeatIntervalSec(): number | undefined {
    return this.#session.heartbeatIntervalSec;
  }

  /** The runtime's name and version. */
  get runtime(): RuntimeInfo {
    return this.#session.runtime;
  }

  /** The negotiated features. */
  get features(): readonly string[] {
    return this.#session.features;
  }

  /** The agents the runtime offers. */
  get agents(): readonly AgentInfo[] {
    return this.#session.agents;
  }

  /** Whether this connection resumed an earlier session. */
  get resumed(): boolean {
    return this.#session.resumed;
  }

  /** The highest `event_seq` received (they arrive gap-free). */
  get lastEventSeq(): number {
    return this.#sequence.last;
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
    const traceId = request.traceId ?? newTraceId();
    const handle = new SubmittedJob(traceId, (jobId, reason) => this.cancel(jobId, reason));
    if (!TRACE_ID.test(traceId)) {
      handle.refuse(
        new ArcpClientError("INVALID_REQUEST", "traceId: must be 32 lowercase hex characters"),
      );
      return handle;
    }
    if (!this.#send("job.submit", submitPayload(request), { trace_id: traceId })) {
      handle.lose(this.#closedError());
      return handle;
    }
    this.#outstanding.submits.add(traceId, handle);
    return handle;
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
    if (this.#routes.hasEnded(jobId)) return Promise.resolve("ended");
    if (!this.#send("job.cancel", reason === undefined ? {} : { reason }, { job_id: jobId })) {
      return Promise.reject(this.#closedError());
    }
    const pending = this.#outstanding.cancels.add(jobId);
    if (this.#negotiated("list_jobs")) {
      this.#list({ limit: 1 }).then(() => pending.settle("ended"), (err) => pending.settle(err));
    }
    return pending.outcome;
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
    if (!this.#negotiated("list_jobs")) {
      return Promise.reject(this.#notNegotiated("list_jobs"));
    }
    return this.#list(request);
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
    if (!this.#negotiated("subscribe")) {
      return Promise.reject(this.#notNegotiated("subscribe"));
    }
    if (!this.#send("job.subscribe", subscribePayload(jobId, options))) {
      return Promise.reject(this.#closedError());
    }
    const answer = Promise.withResolvers<JobSubscription>();
    this.#outstanding.subscribes.add(jobId, answer);
    return answer.promise;
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
    const early = this.#watched.get(jobId);
    if (early) {
      this.#watched.delete(jobId);
      return early;
    }
    const stream = new JobStream();
    if (this.#state === "open") this.#routes.follow(jobId, stream);
    else stream.lose(this.#closedError());
    return stream;
  }

  /**
   * Pings the runtime.
   *
   * @returns the `session.pong` payload
   * @throws {ArcpClientError} `CONNECTION_CLOSED`
   */
  ping(): Promise<PongPayload> {
    const nonce = `p_${newUlid()}`;
    if (!this.#send("session.ping", { nonce, sent_at: nowIso() })) {
      return Promise.reject(this.#closedError());
    }
    const answer = Promise.withResolvers<PongPayload>();
    this.#outstanding.pings.add(nonce, answer);
    return answer.promise;
  }

  /**
   * Tells the runtime which events were processed (feature `ack`), so it
   * may free them. Advisory: resume still uses `lastEventSeq`.
   *
   * @param seq the highest processed `event_seq`; default {@linkcode lastEventSeq}
   * @returns whether the ack was sent (not when `ack` was not negotiated or the session is closed)
   */
  ack(seq: number = this.#sequence.last): boolean {
    if (!this.#negotiated("ack")) return false;
    return this.#send("session.ack", { last_processed_seq: seq });
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
    if (this.#state === "open") {
      this.#send("session.bye", reason === undefined ? {} : { reason });
    }
    this.#shutdown(new ArcpClientError("CONNECTION_CLOSED", "the client closed the session"));
    await this.#closed.promise;
  }

  /**
   * Same as {@linkcode close}, for `await using`.
   *
   * @returns resolves once closed
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- outbound ---------------------------------------------------------

  #sendHello(): void {
    this.#ws.send(
      encodeEnvelope({ type: "session.hello", payload: helloPayload(this.#options) }),
    );
  }

  /** Sends one envelope (`extra` may set its id); false when the session is not open. */
  #send<T extends MessageType>(
    type: T,
    payload: Payloads[T],
    extra: { id?: string; job_id?: string; trace_id?: string } = {},
  ): boolean {
    // Deno's send() throws once the socket is closing, before our close event has run.
    if (this.#state !== "open" || this.#ws.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(encodeEnvelope({ type, session_id: this.#session.sessionId, ...extra, payload }));
    return true;
  }

  #list(request: ListJobsRequest): Promise<JobsPayload> {
    const id = newUlid();
    if (!this.#send("session.list_jobs", listJobsPayload(request), { id })) {
      return Promise.reject(this.#closedError());
    }
    const answer = Promise.withResolvers<JobsPayload>();
    this.#outstanding.lists.add(id, answer);
    return answer.promise;
  }

  // ---- inbound ----------------------------------------------------------

  #onFrame(text: string): void {
    if (this.#state === "closing" || this.#state === "closed") return;
    const env = decode.envelope(text);
    // The reference client drops envelopes without a session id; so do we.
    if (!env?.session_id) return;
    if (this.#state === "connecting") {
      this.#onHandshake(env);
      return;
    }
    if (env.session_id !== this.#session.sessionId) return;
    if (env.event_seq !== undefined && !this.#inSequence(env.event_seq)) return;
    switch (env.type) {
      case "session.ping":
        return this.#onPing(env);
      case "session.pong":
        return this.#onPong(env);
      case "session.error":
        return this.#onSessionError(env);
      case "session.bye":
        return this.#shutdown(
          new ArcpClientError(
            "CONNECTION_CLOSED",
            `the runtime closed the session${
              typeof env.payload.reason === "string" ? `: ${env.payload.reason}` : ""
            }`,
            { retryable: true },
          ),
        );
      case "session.jobs":
        return this.#onJobs(env);
      case "job.accepted":
        return this.#onAccepted(env);
      case "job.event":
        return this.#onEvent(env);
      case "job.result":
        return this.#onResult(env);
      case "job.error":
        return this.#onJobError(env);
      case "job.cancelled":
        return this.#onCancelled(env);
      case "job.subscribed":
        return this.#onSubscribed(env);
    }
  }

  #onHandshake(env: Envelope): void {
    const answer = answerToHello(env, this.#options);
    if (answer instanceof ArcpClientError) return this.#shutdown(answer);
    if (!answer) return;
    this.#session = answer;
    this.#sequence = new EventSequence(answer.lastEventSeq);
    this.#state = "open";
    for (const jobId of this.#options.watch ?? []) {
      const stream = new JobStream();
      this.#watched.set(jobId, stream);
      this.#routes.follow(jobId, stream);
    }
    this.#hello.resolve(this);
  }

  /** Checks an `event_seq`; false when the envelope must not be handled. */
  #inSequence(seq: number): boolean {
    const admitted = this.#sequence.admit(seq);
    if (typeof admitted === "boolean") return admitted;
    this.#options.onGap?.(admitted);
    this.#shutdown(this.#sequence.gapError(admitted));
    return false;
  }

  #onPing(env: Envelope): void {
    const ping = decode.ping(env.payload);
    if (!ping) return;
    this.#send("session.pong", { ping_nonce: ping.nonce, received_at: nowIso() });
  }

  #onPong(env: Envelope): void {
    const pong = decode.pong(env.payload);
    if (!pong) return;
    this.#outstanding.pings.take(pong.ping_nonce)?.resolve(pong);
  }

  /** ARCP §3: a `session.error` fails every pending submit, list, subscribe (and cancel). */
  #onSessionError(env: Envelope): void {
    const err = sessionError(
      decode.errorPayload(env.payload),
      "the runtime sent a malformed session.error",
    );
    this.#lastSessionError = err;
    this.#outstanding.refuse(err);
  }

  #onJobs(env: Envelope): void {
    const jobs = decode.jobs(env.payload);
    if (!jobs) return;
    this.#outstanding.lists.take(jobs.request_id)?.resolve(jobs);
  }

  #onAccepted(env: Envelope): void {
    // Always matched by trace id: the submit always carries one. An
    // unmatched answer (a delegated child, a submit given up on after a
    // session.error) belongs to no handle.
    const handle = env.trace_id ? this.#outstanding.submits.take(env.trace_id) : undefined;
    if (!handle) return;
    const accepted = decode.accepted(env.payload);
    if (!accepted) {
      handle.refuse(
        new ArcpClientError("INTERNAL_ERROR", "the runtime sent a malformed job.accepted"),
      );
      return;
    }
    handle.accept(accepted);
    this.#routes.follow(accepted.job_id, handle);
  }

  #onEvent(env: Envelope): void {
    if (!env.job_id || !this.#routes.isFollowed(env.job_id)) return;
    const event = decode.jobEvent(env);
    if (event) this.#routes.push(env.job_id, event);
  }

  #onResult(env: Envelope): void {
    const result = decode.result(env.payload);
    if (result && env.job_id) this.#terminate(env.job_id, result);
  }

  #onJobError(env: Envelope): void {
    const error = decode.jobError(env.payload);
    if (!error || !env.job_id) return;
    const options = { retryable: error.retryable, details: error.details };
    // A refused cancel is the requester's alone and ends nothing.
    if (error.details?.refused === "job.cancel") {
      this.#outstanding.cancels.settleOldest(
        env.job_id,
        new ArcpClientError(error.code, error.message, options),
      );
      return;
    }
    const handle = env.trace_id && !this.#routes.isFollowed(env.job_id)
      ? this.#outstanding.submits.take(env.trace_id)
      : undefined;
    if (handle) {
      handle.refuse(new SubmitRejectedError(env.job_id, error.code, error.message, options));
      return;
    }
    this.#terminate(
      env.job_id,
      new JobFailedError(env.job_id, error.final_status, error.code, error.message, options),
    );
  }

  #onCancelled(env: Envelope): void {
    if (!env.job_id || !decode.cancelled(env.payload)) return;
    this.#outstanding.cancels.settleAll(env.job_id, "cancelling");
  }

  #onSubscribed(env: Envelope): void {
    const info = decode.subscribed(env.payload);
    if (!info) return;
    const answer = this.#outstanding.subscribes.take(info.job_id);
    if (!answer) return;
    const sub = new Subscription(info, () => this.#unsubscribe(info.job_id, sub));
    this.#routes.follow(info.job_id, sub);
    answer.resolve(sub);
  }

  // ---- bookkeeping -------------------------------------------------------

  #unsubscribe(jobId: string, sub: Subscription): void {
    if (!this.#routes.unfollow(jobId, sub)) this.#send("job.unsubscribe", { job_id: jobId });
  }

  #terminate(jobId: string, outcome: JobOutcome): void {
    this.#routes.end(jobId, outcome);
    this.#outstanding.cancels.settleAll(jobId, "ended");
  }

  #negotiated(feature: Feature): boolean {
    return this.#session.features.includes(feature);
  }

  #notNegotiated(feature: Feature): ArcpClientError {
    return new ArcpClientError(
      "INVALID_REQUEST",
      `the session did not negotiate the ${feature} feature`,
    );
  }

  #closedError(): ArcpClientError {
    return this.#failure ??
      new ArcpClientError("CONNECTION_CLOSED", "the session is not open", { retryable: true });
  }

  /** Ends the session here: everything pending fails with `error`, and the socket closes. */
  #shutdown(error: ArcpClientError): void {
    if (this.#state === "closing" || this.#state === "closed") return;
    this.#failure = error;
    const wasConnecting = this.#state === "connecting";
    this.#state = "closing";
    if (wasConnecting) this.#hello.reject(error);
    this.#failAll(error);
    try {
      this.#ws.close(1000);
    } catch {
      // Already closing: the close event still comes.
    }
  }

  #onClose(e: CloseEvent): void {
    if (this.#state !== "closing") {
      const why = this.#socketError || e.reason;
      const after = this.#lastSessionError
        ? ` after session.error ${this.#lastSessionError.code}: ${this.#lastSessionError.message}`
        : "";
      this.#shutdown(
        new ArcpClientError(
          "CONNECTION_CLOSED",
          `connection closed (code ${e.code}${why ? `, ${why}` : ""})${after}`,
          { retryable: true, cause: this.#lastSessionError },
        ),
      );
    }
    this.#state = "closed";
    this.#closed.resolve();
  }

  #failAll(error: ArcpClientError): void {
    this.#outstanding.lose(error);
    this.#routes.loseAll(error);
  }
}
