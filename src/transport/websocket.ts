/**
 * WebSocket transport: one JSON envelope per text frame, binary frames
 * ignored, an oversized frame closes that socket alone with code 1009. The
 * upgrade itself is the HTTP side's (`http.ts`); this is what happens on
 * the socket afterwards.
 *
 * @module
 */
import { type FrameSink, SendQueue, SOCKET_WINDOW_BYTES } from "./send_queue.ts";
import type { Transport, TransportHandler } from "./transport.ts";

/** Options of {@linkcode acceptWebSocket}. */
export interface WebSocketOptions {
  /** Largest inbound frame in bytes. */
  maxFrameBytes: number;
  /** Peer address. */
  remoteAddr: string;
  /** Whether the request came over TLS. */
  secure: boolean;
  /** Bytes queued to the socket past which it is aborted. */
  maxQueuedBytes: number;
  /**
   * Drops the underlying connection at once (the gate's); without it an
   * abort drops this side's queue and closes behind what the socket holds.
   */
  abort?: () => void;
}

/**
 * Serves one upgraded socket: builds its transport, and its handler once
 * the socket opens. An idle session holds this for as long as it is
 * connected, so the socket's listener, the transport and the sink the send
 * queue writes to are one object of a class (no closures, no per-socket
 * object literals with accessors, which V8 keeps in dictionary mode).
 *
 * @param socket the socket `Deno.upgradeWebSocket` returned
 * @param options frame cap, queue cap, peer address
 * @param makeHandler builds the handler once the transport exists
 * @example
 * ```ts ignore
 * const { socket, response } = Deno.upgradeWebSocket(req);
 * acceptWebSocket(socket, options, (t) => new Connection(ctx, t));
 * return response;
 * ```
 */
export function acceptWebSocket(
  socket: WebSocket,
  options: WebSocketOptions,
  makeHandler: (transport: Transport) => TransportHandler,
): void {
  const link = new SocketLink(socket, options, makeHandler);
  for (const type of ["open", "message", "close", "error"]) socket.addEventListener(type, link);
}

/**
 * A socket as a {@linkcode Transport}, and its event listener. Frames wait
 * in a {@linkcode SendQueue} and reach the socket a window at a time; past
 * `maxQueuedBytes` the socket is aborted and the queue dropped.
 */
class SocketLink implements Transport, EventListenerObject {
  readonly remoteAddr: string;
  readonly secure: boolean;
  readonly maxBufferedAmount: number;
  #socket: WebSocket;
  #options: WebSocketOptions;
  #makeHandler: ((transport: Transport) => TransportHandler) | undefined;
  #handler: TransportHandler | undefined;
  #queue: SendQueue;
  #closing = false;

  constructor(
    socket: WebSocket,
    options: WebSocketOptions,
    makeHandler: (transport: Transport) => TransportHandler,
  ) {
    this.#socket = socket;
    this.#options = options;
    this.#makeHandler = makeHandler;
    this.remoteAddr = options.remoteAddr;
    this.secure = options.secure;
    this.maxBufferedAmount = options.maxQueuedBytes;
    this.#queue = new SendQueue(new SocketSink(socket), {
      windowBytes: SOCKET_WINDOW_BYTES,
      maxBytes: options.maxQueuedBytes,
      // A client that stops reading must not grow this process without bound.
      onOverflow: () => this.abort(),
    });
  }

  get bufferedAmount(): number {
    return this.#queue.bufferedAmount;
  }

  send(text: string): void {
    if (!this.#closing && this.#socket.readyState === WebSocket.OPEN) this.#queue.push(text);
  }

  close(code = 1000, reason = ""): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#queue.whenEmpty(() => this.#closeNow(code, reason));
  }

  abort(): void {
    this.#closing = true;
    this.#queue.stop();
    // Without the gate's abort the close still waits behind the socket's window, no more.
    if (this.#options.abort) this.#options.abort();
    else this.#closeNow(1008, "too much queued");
  }

  handleEvent(event: Event): void {
    switch (event.type) {
      case "open":
        this.#handler = this.#makeHandler!(this);
        this.#makeHandler = undefined;
        return;
      case "message":
        return this.#onMessage(event as MessageEvent);
      case "close":
        return this.#onClose(event as CloseEvent);
    }
  }

  #onMessage(event: MessageEvent): void {
    const handler = this.#handler;
    if (!handler || typeof event.data !== "string") return;
    const max = this.#options.maxFrameBytes;
    // Length in UTF-16 units never exceeds the UTF-8 byte count by more than
    // 3x, so only a frame near the cap needs an exact byte count.
    const size = event.data.length * 3 <= max ? 0 : new TextEncoder().encode(event.data).byteLength;
    if (size > max) {
      this.close(1009, `frame of ${size} bytes exceeds ${max}`);
      return;
    }
    handler.onText(event.data);
  }

  #onClose(event: CloseEvent): void {
    this.#queue.stop();
    // A socket that ended without the closing handshake (Deno's own ping
    // timeout, a write error) keeps its TCP connection open behind the
    // frames it could not send: drop it, or the gate's relay holds it and
    // its kernel buffers for as long as the client keeps it.
    if (!event.wasClean) this.#options.abort?.();
    this.#handler?.onClose();
  }

  #closeNow(code: number, reason: string): void {
    const socket = this.#socket;
    if (socket.readyState !== WebSocket.OPEN && socket.readyState !== WebSocket.CONNECTING) return;
    try {
      socket.close(code, reason);
    } catch {
      socket.close();
    }
  }
}

/** The socket as the send queue sees it: what it holds, and a send that needs it open. */
class SocketSink implements FrameSink {
  #socket: WebSocket;

  constructor(socket: WebSocket) {
    this.#socket = socket;
  }

  get bufferedAmount(): number {
    return this.#socket.readyState === WebSocket.OPEN ? this.#socket.bufferedAmount : 0;
  }

  send(text: string): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(text);
  }
}
