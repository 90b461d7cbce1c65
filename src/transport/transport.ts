/**
 * The one thing sessions need from a transport: send text, close, and say
 * who is on the other end.
 *
 * @module
 */

/** One connection's outbound side. */
export interface Transport {
  /** Sends one envelope's text as one frame or line. */
  send(text: string): void;
  /** Closes the connection: the close follows whatever is still queued. */
  close(code?: number, reason?: string): void;
  /** Drops the connection at once, discarding what is still queued. */
  abort(): void;
  /** The peer's address, for throttling (never logged with secrets). */
  readonly remoteAddr: string;
  /** Bytes queued but not yet written. */
  readonly bufferedAmount: number;
  /**
   * Bytes queued past which the transport drops itself (`Infinity` when it
   * never does); senders that can wait pause well below it.
   */
  readonly maxBufferedAmount: number;
  /** Whether the connection is encrypted (wss://). */
  readonly secure: boolean;
}

/** What a transport calls as frames arrive. */
export interface TransportHandler {
  /** One inbound text frame or line. */
  onText(text: string): void;
  /** The connection is gone. */
  onClose(): void;
}

/** Default cap on one inbound frame. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

/**
 * Default cap on the bytes queued to one socket: past it the socket is
 * dropped. Sessions pause their events well below it (at 1 MiB by default,
 * never above half the cap), so only a client that stops reading and keeps
 * asking (pings, submits) reaches it.
 */
export const DEFAULT_MAX_SOCKET_BYTES = 8 * 1024 * 1024;
