/**
 * One connection's state machine: the hello handshake (`handshake.ts`), then
 * every inbound message checked against its session and run through its row
 * of the route table (`routes.ts`), one at a time and in order (so submits
 * are answered in the order received). Pings are answered at once, outside
 * that queue. Bad input of any kind gets a specific error and the session
 * goes on.
 *
 * @module
 */
import { encodeEnvelope } from "../protocol/encode.ts";
import { decodeEnvelope, decodePayload, type Envelope } from "../protocol/envelope.ts";
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import { newSessionId } from "../protocol/ids.ts";
import type { Transport, TransportHandler } from "../transport/transport.ts";
import type { ConnectionContext } from "./context.ts";
import { handshake, type HandshakeHost } from "./handshake.ts";
import type { Heartbeat } from "./heartbeat.ts";
import { nextTurn, sliceSpent } from "../turn_slice.ts";
import type { DropReason } from "./operator_events.ts";
import { type Route, routeOf } from "./routes.ts";
import type { Session } from "./session.ts";

/**
 * Handles one transport's frames. It is also the handshake's host: an idle
 * session keeps its connection for as long as it is connected, so what the
 * handshake and the heartbeat hold on to is this object, not closures over it.
 */
export class Connection implements TransportHandler, HandshakeHost {
  #ctx: ConnectionContext;
  #transport: WatchedTransport;
  #session: Session | undefined;
  #helloSeen = false;
  #closed = false;
  #queue: Promise<void> = Promise.resolve();
  /**
   * Frames received but not yet routed, held while the event loop's stretch
   * is spent: raw text, except a first one already decoded on arrival.
   */
  #backlog: (string | Envelope)[] = [];
  #backlogHead = 0;
  #heartbeat: Heartbeat | undefined;
  #helloTimer: ReturnType<typeof setTimeout> | undefined;
  /** Why the session is reported dropped when the socket goes, if the runtime knows better than "gone". */
  #dropReason: DropReason | undefined;

  /**
   * @param ctx what connections share
   * @param transport this connection's outbound side
   */
  constructor(ctx: ConnectionContext, transport: Transport) {
    this.#ctx = ctx;
    this.#transport = new WatchedTransport(transport);
    // A socket that never says hello would otherwise be held forever (it
    // may well answer WebSocket pings).
    this.#helloTimer = setTimeout(() => {
      const sec = ctx.helloTimeoutMs / 1000;
      ctx.events.policyClose("hello_timeout", transport.remoteAddr, undefined, {
        timeout_sec: sec,
      });
      this.#reject(
        new ArcpError("INVALID_REQUEST", `type: no session.hello within ${sec} s`, {
          cap: "hello_timeout",
          limit: sec,
        }),
        1008,
      );
    }, ctx.helloTimeoutMs);
  }

  /**
   * One inbound frame.
   *
   * @param text the frame
   */
  onText(text: string): void {
    if (this.#closed) return;
    this.#heartbeat?.heard();
    // Frames stay in arrival order: once one waits, every later one waits behind it.
    if (this.#backlog.length > 0) {
      this.#backlog.push(text);
      return;
    }
    if (!sliceSpent()) {
      this.#process(text);
      return;
    }
    // The stretch is spent, but nothing of this connection waits: its first
    // frame is decoded now, so a ping (answered outside the route queue) is
    // not held for another turn of an event loop busy with other sessions'
    // bursts. Anything else waits, decoded, at the head of the backlog.
    const env = this.#decode(text);
    if (env === undefined) return;
    const route = routeOf(env.type);
    if (route?.inline && this.#session) {
      this.#dispatch(env);
      return;
    }
    this.#backlog.push(env);
    nextTurn().then(() => this.#drainBacklog());
  }

  /**
   * Processes held frames in order, a budget's worth per macrotask, and at
   * least one: the turn's budget is shared, so a turn another loop spent
   * still moves the backlog on.
   */
  #drainBacklog(): void {
    let first = true;
    while (this.#backlogHead < this.#backlog.length) {
      if (this.#closed) break;
      if (!first && sliceSpent()) {
        nextTurn().then(() => this.#drainBacklog());
        return;
      }
      first = false;
      const frame = this.#backlog[this.#backlogHead];
      this.#backlog[this.#backlogHead++] = "";
      if (typeof frame === "string") this.#process(frame);
      else this.#dispatch(frame);
    }
    this.#backlog = [];
    this.#backlogHead = 0;
  }

  /** Decodes one frame and routes it. */
  #process(text: string): void {
    const env = this.#decode(text);
    if (env !== undefined) this.#dispatch(env);
  }

  /** Decodes one frame; a bad one is answered with its error and yields undefined. */
  #decode(text: string): Envelope | undefined {
    try {
      return decodeEnvelope(text);
    } catch (err) {
      this.#sessionError(toArcpError(err));
      return undefined;
    }
  }

  /** Routes one decoded frame: inline routes at once, the rest in order. */
  #dispatch(env: Envelope): void {
    const route = routeOf(env.type);
    if (route?.inline && this.#session) {
      this.#run(route, env, this.#session).catch((err) => this.#failed(env, err));
      return;
    }
    this.#queue = this.#queue.then(() => this.#route(env)).catch((err) => this.#failed(env, err));
  }

  /** The transport closed. */
  onClose(): void {
    this.#closed = true;
    clearTimeout(this.#helloTimer);
    this.#heartbeat?.stop();
    const session = this.#session;
    if (session?.detach(this.#transport)) {
      // A session handed to another node is that node's to write.
      if (!session.evicted) this.#ctx.store.write([session.recordWrite()]).catch(() => {});
      // A socket the runtime closed on purpose (bye, shutdown, a slow
      // reader, a takeover) is not a drop; the lost heartbeat is one it
      // closed because the client was already gone.
      const reason = this.#dropReason ?? (this.#transport.closedHere ? undefined : "socket_gone");
      if (reason) this.#ctx.events.sessionDropped(reason, this.#transport.remoteAddr, session);
    }
  }

  async #route(env: Envelope): Promise<void> {
    if (this.#closed) return;
    if (!this.#helloSeen) {
      if (env.type !== "session.hello") {
        this.#reject(
          new ArcpError(
            "INVALID_REQUEST",
            `type: expected session.hello first, got ${env.type.slice(0, 64)}`,
          ),
        );
        return;
      }
      this.#helloSeen = true;
      clearTimeout(this.#helloTimer);
      // The timer's callback holds the context and transport; let it go.
      this.#helloTimer = undefined;
      await handshake(this.#ctx, env, this);
      return;
    }
    const session = this.#session!;
    if (env.type === "session.hello") {
      throw new ArcpError("INVALID_REQUEST", "type: session.hello was already received");
    }
    const route = routeOf(env.type);
    // A vendor type this session did not negotiate does not exist for it.
    if (!route || (route.feature?.startsWith("x-") && !session.has(route.feature))) {
      throw new ArcpError(
        "INVALID_REQUEST",
        `type: unknown message type ${JSON.stringify(env.type.slice(0, 64))}`,
      );
    }
    if (env.session_id === undefined) {
      throw new ArcpError(
        "INVALID_REQUEST",
        "session_id: required on every envelope after the hello",
      );
    }
    if (env.session_id !== session.sessionId) {
      throw new ArcpError("INVALID_REQUEST", "session_id: does not name this session");
    }
    if (route.feature && !session.has(route.feature)) {
      throw new ArcpError(
        "INVALID_REQUEST",
        `type: ${env.type} needs the ${route.feature} feature, which this session did not negotiate`,
      );
    }
    await this.#run(route, env, session);
  }

  /** Decodes the payload once, against the route's schema, and runs the handler. */
  async #run(route: Route, env: Envelope, session: Session): Promise<void> {
    const message = { env, session, ctx: this.#ctx, close: () => this.#close() };
    try {
      await route.handle({ ...message, payload: decodePayload(route.schema, env.payload) });
    } catch (err) {
      if (!route.refuse) throw err;
      await route.refuse(toArcpError(err), { ...message, payload: env.payload });
    }
  }

  /** A message whose handler threw: unexpected errors are logged, all are reported. */
  #failed(env: Envelope, err: unknown): void {
    if (!(err instanceof ArcpError)) {
      this.#ctx.log.error("handler failed", { type: env.type, error: String(err) });
    }
    this.#sessionError(toArcpError(err));
  }

  /** This connection's outbound side, as the handshake and its session use it. */
  get transport(): Transport {
    return this.#transport;
  }

  /**
   * Whether the connection has closed.
   *
   * @returns true once closed
   */
  isClosed(): boolean {
    return this.#closed;
  }

  /**
   * Refuses the hello: an error naming no session, then close.
   *
   * @param err why
   */
  reject(err: ArcpError): void {
    this.#reject(err);
  }

  /** Closes the connection. */
  close(): void {
    this.#close();
  }

  /** The client fell silent: the session is reported dropped and the connection closed. */
  lost(): void {
    this.#dropReason = "heartbeat_lost";
    this.#close();
  }

  /**
   * The session is attached: from here on messages route to it.
   *
   * @param session the opened session
   */
  adopt(session: Session): void {
    this.#session = session;
  }

  /**
   * Every inbound frame from here on counts as heard, and a close stops it.
   *
   * @param heartbeat the started heartbeat
   */
  watch(heartbeat: Heartbeat): void {
    this.#heartbeat = heartbeat;
  }

  /** A session-level error; the session goes on. */
  #sessionError(err: ArcpError): void {
    if (this.#session) this.#session.sendControl("session.error", err.toPayload());
    else this.#reject(err);
  }

  /** A rejected hello: error with a fresh id that names no session, then close. */
  #reject(err: ArcpError, code = 1000): void {
    if (this.#closed) return;
    this.#transport.send(
      encodeEnvelope({
        type: "session.error",
        session_id: newSessionId(),
        payload: err.toPayload(),
      }),
    );
    this.#close(code);
  }

  #close(code = 1000): void {
    if (this.#closed) return;
    this.#transport.close(code, code === 1000 ? "bye" : "no hello");
    this.onClose();
  }
}

/**
 * The transport as a connection and its session use it, noting whether the
 * runtime closed it (so a close it did not make is a drop).
 */
class WatchedTransport implements Transport {
  /** The runtime closed or dropped the socket itself (the connection or its session did). */
  closedHere = false;
  readonly remoteAddr: string;
  readonly secure: boolean;
  readonly maxBufferedAmount: number;
  #inner: Transport;

  constructor(inner: Transport) {
    this.#inner = inner;
    this.remoteAddr = inner.remoteAddr;
    this.secure = inner.secure;
    this.maxBufferedAmount = inner.maxBufferedAmount;
  }

  get bufferedAmount(): number {
    return this.#inner.bufferedAmount;
  }

  send(text: string): void {
    this.#inner.send(text);
  }

  close(code?: number, reason?: string): void {
    this.closedHere = true;
    this.#inner.close(code, reason);
  }

  abort(): void {
    this.closedHere = true;
    this.#inner.abort();
  }
}
