/**
 * WebSocket transport: one JSON envelope per text frame, binary frames
 * ignored, an oversized frame closes that socket alone with code 1009.
 *
 * @module
 */
import type { Transport, TransportHandler } from "./transport.ts";

/** Options of {@linkcode acceptWebSocket}. */
export interface WebSocketOptions {
  /** Largest inbound frame in bytes. */
  maxFrameBytes: number;
  /** Peer address. */
  remoteAddr: string;
  /** Whether the request came over TLS. */
  secure: boolean;
}

/**
 * Upgrades a request to a WebSocket and wires it to a handler.
 *
 * @param req the upgrade request
 * @param options frame cap and peer address
 * @param makeHandler builds the handler once the transport exists
 * @returns the 101 response to return to the client
 */
export function acceptWebSocket(
  req: Request,
  options: WebSocketOptions,
  makeHandler: (transport: Transport) => TransportHandler,
): Response {
  const { socket, response } = Deno.upgradeWebSocket(req);
  const transport: Transport = {
    send(text) {
      if (socket.readyState === WebSocket.OPEN) socket.send(text);
    },
    close(code = 1000, reason = "") {
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
        try {
          socket.close(code, reason);
        } catch {
          socket.close();
        }
      }
    },
    remoteAddr: options.remoteAddr,
    secure: options.secure,
    get bufferedAmount() {
      return socket.bufferedAmount;
    },
  };
  const handler = makeHandler(transport);
  socket.onmessage = (e: MessageEvent) => {
    if (typeof e.data !== "string") return;
    // Length in UTF-16 units never exceeds the UTF-8 byte count by more than
    // 3x, so only a frame near the cap needs an exact byte count.
    const size = e.data.length * 3 <= options.maxFrameBytes
      ? 0
      : new TextEncoder().encode(e.data).byteLength;
    if (size > options.maxFrameBytes) {
      transport.close(1009, `frame of ${size} bytes exceeds ${options.maxFrameBytes}`);
      return;
    }
    handler.onText(e.data);
  };
  socket.onclose = () => handler.onClose();
  socket.onerror = () => {};
  return response;
}
