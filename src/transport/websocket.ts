/**
 * WebSocket transport: one JSON envelope per text frame, binary frames
 * ignored, an oversized frame closes that socket alone with code 1009. The
 * upgrade itself is the HTTP side's (`http.ts`); this is what happens on
 * the socket afterwards.
 *
 * @module
 */
import type { WSEvents } from "hono/ws";
import { SendQueue, SOCKET_WINDOW_BYTES } from "./send_queue.ts";
import type { Transport, TransportHandler } from "./transport.ts";

/** Options of {@linkcode webSocketEvents}. */
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
 * The socket events of one upgraded connection, wired to a handler that is
 * built once the socket opens.
 *
 * @param options frame cap and peer address
 * @param makeHandler builds the handler once the transport exists
 * @returns the events to hand to hono's `upgradeWebSocket`
 * @example
 * ```ts ignore
 * import { upgradeWebSocket } from "hono/deno";
 * app.get("/arcp", upgradeWebSocket(() => webSocketEvents(options, (t) => new Connection(ctx, t))));
 * ```
 */
export function webSocketEvents(
  options: WebSocketOptions,
  makeHandler: (transport: Transport) => TransportHandler,
): WSEvents<WebSocket> {
  let transport: SocketTransport | undefined;
  let handler: TransportHandler | undefined;
  return {
    onOpen(_event, ws) {
      // hono's Deno adapter always hands over the socket it upgraded.
      transport = socketTransport(ws.raw!, options);
      handler = makeHandler(transport);
    },
    onMessage(event) {
      if (!transport || !handler || typeof event.data !== "string") return;
      // Length in UTF-16 units never exceeds the UTF-8 byte count by more than
      // 3x, so only a frame near the cap needs an exact byte count.
      const size = event.data.length * 3 <= options.maxFrameBytes
        ? 0
        : new TextEncoder().encode(event.data).byteLength;
      if (size > options.maxFrameBytes) {
        transport.close(1009, `frame of ${size} bytes exceeds ${options.maxFrameBytes}`);
        return;
      }
      handler.onText(event.data);
    },
    onClose(event) {
      transport?.dispose();
      // A socket that ended without the closing handshake (Deno's own ping
      // timeout, a write error) keeps its TCP connection open behind the
      // frames it could not send: drop it, or the gate's relay holds it and
      // its kernel buffers for as long as the client keeps it.
      if (!event.wasClean) options.abort?.();
      handler?.onClose();
    },
  };
}

/** A transport and what ends it when its socket goes away. */
interface SocketTransport extends Transport {
  /** Drops what is still queued; the socket is gone. */
  dispose(): void;
}

/**
 * A socket as a {@linkcode Transport}. Frames wait in a {@linkcode SendQueue}
 * and reach the socket a window at a time; past `maxQueuedBytes` the socket
 * is aborted and the queue dropped.
 *
 * @param socket the upgraded socket
 * @param options peer address and whether it is encrypted
 * @returns the transport
 */
function socketTransport(socket: WebSocket, options: WebSocketOptions): SocketTransport {
  const open = () => socket.readyState === WebSocket.OPEN;
  const queue = new SendQueue({
    get bufferedAmount() {
      return open() ? socket.bufferedAmount : 0;
    },
    send(text) {
      if (open()) socket.send(text);
    },
  }, {
    windowBytes: SOCKET_WINDOW_BYTES,
    maxBytes: options.maxQueuedBytes,
    // A client that stops reading must not grow this process without bound.
    onOverflow: () => abort(),
  });
  let closing = false;
  const closeNow = (code: number, reason: string): void => {
    if (socket.readyState !== WebSocket.OPEN && socket.readyState !== WebSocket.CONNECTING) return;
    try {
      socket.close(code, reason);
    } catch {
      socket.close();
    }
  };
  const abort = (): void => {
    closing = true;
    queue.stop();
    // Without the gate's abort the close still waits behind the socket's window, no more.
    if (options.abort) options.abort();
    else closeNow(1008, "too much queued");
  };
  return {
    send(text) {
      if (!closing && open()) queue.push(text);
    },
    close(code = 1000, reason = "") {
      if (closing) return;
      closing = true;
      queue.whenEmpty(() => closeNow(code, reason));
    },
    abort,
    dispose: () => queue.stop(),
    remoteAddr: options.remoteAddr,
    secure: options.secure,
    maxBufferedAmount: options.maxQueuedBytes,
    get bufferedAmount() {
      return queue.bufferedAmount;
    },
  };
}
