/**
 * The session's wire: the WebSocket, the handshake on it, and the checks
 * every later envelope passes (its session id, its `event_seq`) before the
 * client handles it. It also ends the session, once, however it ends.
 *
 * @module
 */
import { encodeEnvelope } from "../protocol/encode.ts";
import type { Envelope } from "../protocol/envelope.ts";
import type { MessageType, Payloads } from "../protocol/messages.ts";
import type { ConnectOptions } from "./connect_options.ts";
import * as decode from "./decode.ts";
import { ArcpClientError } from "./errors.ts";
import { EventSequence } from "./_event_sequence.ts";
import { answerToHello, helloPayload, NO_SESSION, type SessionInfo } from "./_handshake.ts";

/** What the connection tells the client. */
export interface ConnectionEvents {
  /** The runtime welcomed the session; it is open. */
  welcomed(): void;
  /**
   * An envelope of the open session, in order.
   *
   * @param env the envelope
   */
  envelope(env: Envelope): void;
  /**
   * The session ended here: everything pending must fail.
   *
   * @param error why
   */
  failed(error: ArcpClientError): void;
}

/** One session's WebSocket, from the hello to the close. */
export class Connection {
  #ws: WebSocket;
  #options: ConnectOptions;
  #events: ConnectionEvents;
  #state: "connecting" | "open" | "closing" | "closed" = "connecting";
  #closed = Promise.withResolvers<void>();
  #failure: ArcpClientError | undefined;
  #lastSessionError: ArcpClientError | undefined;
  #socketError = "";
  #session: SessionInfo = NO_SESSION;
  #sequence = new EventSequence(0);

  /**
   * Takes over a socket that is opening: the hello goes out once it is open.
   *
   * @param ws the socket
   * @param options the hello's contents and the gap callback
   * @param events where the connection reports to
   */
  constructor(ws: WebSocket, options: ConnectOptions, events: ConnectionEvents) {
    this.#ws = ws;
    this.#options = options;
    this.#events = events;
    ws.onopen = () =>
      ws.send(encodeEnvelope({ type: "session.hello", payload: helloPayload(options) }));
    ws.onmessage = (e: MessageEvent) => {
      if (typeof e.data === "string") this.#onFrame(e.data);
    };
    ws.onerror = (e: Event) => {
      this.#socketError = e instanceof ErrorEvent ? e.message : "socket error";
    };
    ws.onclose = (e: CloseEvent) => this.#onClose(e);
  }

  /** What the welcome said (empty before it). */
  get session(): SessionInfo {
    return this.#session;
  }

  /** The highest `event_seq` received. */
  get lastEventSeq(): number {
    return this.#sequence.last;
  }

  /** Whether the session is open: welcomed, and not ending. */
  get isOpen(): boolean {
    return this.#state === "open";
  }

  /** Resolves once the socket is closed. */
  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /**
   * Sends one envelope of the open session.
   *
   * @param type the message type
   * @param payload its payload
   * @param extra the envelope's id, job id or trace id
   * @returns false when the session is not open, so nothing was sent
   */
  send<T extends MessageType>(
    type: T,
    payload: Payloads[T],
    extra: { id?: string; job_id?: string; trace_id?: string } = {},
  ): boolean {
    // Deno's send() throws once the socket is closing, before our close event has run.
    if (this.#state !== "open" || this.#ws.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(encodeEnvelope({ type, session_id: this.#session.sessionId, ...extra, payload }));
    return true;
  }

  /**
   * Remembers the runtime's latest `session.error`, to say why the
   * connection closed if the runtime closes it next.
   *
   * @param error the error
   */
  noteSessionError(error: ArcpClientError): void {
    this.#lastSessionError = error;
  }

  /**
   * What a request on a session that is not open fails with.
   *
   * @returns the error that ended the session, or `CONNECTION_CLOSED`
   */
  closedError(): ArcpClientError {
    return this.#failure ??
      new ArcpClientError("CONNECTION_CLOSED", "the session is not open", { retryable: true });
  }

  /**
   * Ends the session here: everything pending fails with `error`, and the socket closes.
   *
   * @param error why
   */
  shutdown(error: ArcpClientError): void {
    if (this.#state === "closing" || this.#state === "closed") return;
    this.#failure = error;
    this.#state = "closing";
    this.#events.failed(error);
    try {
      this.#ws.close(1000);
    } catch {
      // Already closing: the close event still comes.
    }
  }

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
    this.#events.envelope(env);
  }

  #onHandshake(env: Envelope): void {
    const answer = answerToHello(env, this.#options);
    if (answer instanceof ArcpClientError) return this.shutdown(answer);
    if (!answer) return;
    this.#session = answer;
    this.#sequence = new EventSequence(answer.lastEventSeq);
    this.#state = "open";
    this.#events.welcomed();
  }

  /** Checks an `event_seq`; false when the envelope must not be handled. */
  #inSequence(seq: number): boolean {
    const admitted = this.#sequence.admit(seq);
    if (typeof admitted === "boolean") return admitted;
    this.#options.onGap?.(admitted);
    this.shutdown(this.#sequence.gapError(admitted));
    return false;
  }

  #onClose(e: CloseEvent): void {
    if (this.#state !== "closing") {
      const why = this.#socketError || e.reason;
      const after = this.#lastSessionError
        ? ` after session.error ${this.#lastSessionError.code}: ${this.#lastSessionError.message}`
        : "";
      this.shutdown(
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
}
