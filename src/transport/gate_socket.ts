/**
 * A WebSocket the gate speaks itself, on the client's own TCP or TLS
 * connection: no second hop through the private server, no Deno WebSocket
 * behind it. It keeps what the runtime's sockets promised before: one
 * envelope per text message, binary messages dropped, a message over the
 * cap closes that socket alone with 1009, frames wait in a
 * {@linkcode SendQueue} whose cap drops the connection, and the keepalive
 * of `Deno.upgradeWebSocket`'s default (a ping after 60 s without a frame
 * from the client, the connection closed with 1001 when another 60 s bring
 * nothing). Bad framing fails the connection with the code RFC 6455 names
 * (see `ws_frames.ts`).
 *
 * @module
 */
import { type FrameSink, SendQueue, SOCKET_WINDOW_BYTES } from "./send_queue.ts";
import type { Transport, TransportHandler } from "./transport.ts";
import type { WebSocketOptions } from "./websocket.ts";
import {
  encodeCloseFrame,
  encodeControlFrame,
  encodeTextFrame,
  encodeTextFrameInto,
  type FrameEvents,
  FrameParser,
  OPCODE_PING,
  OPCODE_PONG,
} from "./ws_frames.ts";

/**
 * An idle socket waits for data in a small buffer; a read that fills it
 * borrows a large one until a read comes up short (as the gate's relay does).
 */
const IDLE_READ_BYTES = 1024;
const STREAM_READ_BYTES = 16 * 1024;
/**
 * `Deno.upgradeWebSocket`'s default idleTimeout is 120 s: a ping at half of
 * it, a close at the rest, so a session behaves the same on either path.
 */
export const KEEPALIVE_MS = 60_000;
/**
 * How long the server waits, once its close frame is out, for the client's
 * close frame and end of stream before it drops the connection. RFC 6455
 * §7.1.1 lets the server end the TCP connection first; waiting a little
 * lets a client read the close frame before a reset could discard it,
 * and bounds what a client that never answers holds (as Deno's own socket
 * bounds it).
 */
export const CLOSE_WAIT_MS = 5_000;

/** Timings of a {@linkcode GateWebSocket}; tests shorten them. */
export interface GateSocketTimings {
  /** A ping after this long without a frame from the client; the close after as long again (ms). */
  keepaliveMs: number;
  /** How long a sent close frame waits for the client's answer and end of stream (ms). */
  closeWaitMs: number;
}

/** The timings `arcp serve` uses. */
export const DEFAULT_GATE_SOCKET_TIMINGS: GateSocketTimings = {
  keepaliveMs: KEEPALIVE_MS,
  closeWaitMs: CLOSE_WAIT_MS,
};

/** What the socket needs of the gate's connection. */
export interface GateConn {
  /** The client's connection, TCP or TLS. */
  readonly conn: Deno.Conn;
  /** Closes the connection at once and forgets it. Idempotent. */
  drop(): void;
}

/**
 * The socket `serveGated`'s `upgrade` hands the route: like the one
 * `Deno.upgradeWebSocket` returns, it opens once the route has returned its
 * response and the gate has written the 101. An idle session holds this
 * object, its parser, writer and send queue, and one 1 KiB read buffer.
 */
export class GateWebSocket implements Transport, FrameEvents {
  #remoteAddr = "unknown";
  #secure = false;
  #maxBufferedAmount = 0;
  #link: GateConn;
  #timings: GateSocketTimings;
  #makeHandler: ((transport: Transport) => TransportHandler) | undefined;
  #handler: TransportHandler | undefined;
  #parser: FrameParser | undefined;
  #writer: FrameWriter;
  #queue: SendQueue | undefined;
  /** A close has been asked for (it waits behind the queue), or sent. */
  #closing = false;
  #ended = false;
  #lastHeard = 0;
  #pingedAt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param link the client's connection and how to drop it
   * @param timings keepalive and close wait
   */
  constructor(link: GateConn, timings: GateSocketTimings = DEFAULT_GATE_SOCKET_TIMINGS) {
    this.#link = link;
    this.#timings = timings;
    this.#writer = new FrameWriter(link, () => this.#queue?.drained());
  }

  /**
   * Says how to serve the socket once it opens, as `acceptWebSocket` does
   * for Deno's sockets.
   *
   * @param options frame cap, queue cap, peer address, TLS
   * @param makeHandler builds the handler once the socket is open
   */
  serve(options: WebSocketOptions, makeHandler: (transport: Transport) => TransportHandler): void {
    this.#remoteAddr = options.remoteAddr;
    this.#secure = options.secure;
    this.#maxBufferedAmount = options.maxQueuedBytes;
    this.#makeHandler = makeHandler;
    this.#parser = new FrameParser(this, options.maxFrameBytes);
    this.#queue = new SendQueue(this.#writer, {
      windowBytes: SOCKET_WINDOW_BYTES,
      maxBytes: options.maxQueuedBytes,
      // A client that stops reading must not grow this process without bound.
      onOverflow: () => this.abort(),
    });
  }

  /** Whether {@linkcode serve} was called: the gate opens only a socket someone serves. */
  get served(): boolean {
    return this.#parser !== undefined;
  }

  /** Opens the socket once the 101 is written: builds the handler and reads until the connection ends. */
  open(): void {
    const make = this.#makeHandler!;
    this.#makeHandler = undefined;
    this.#lastHeard = Date.now();
    this.#arm(this.#timings.keepaliveMs);
    this.#handler = make(this);
    this.#read();
  }

  get remoteAddr(): string {
    return this.#remoteAddr;
  }

  get secure(): boolean {
    return this.#secure;
  }

  get maxBufferedAmount(): number {
    return this.#maxBufferedAmount;
  }

  /** Bytes queued: those waiting in the send queue plus those handed to the connection. */
  get bufferedAmount(): number {
    return this.#queue?.bufferedAmount ?? 0;
  }

  send(text: string): void {
    if (!this.#closing && !this.#ended) this.#queue!.push(text);
  }

  close(code = 1000, reason = ""): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#queue!.whenEmpty(() => this.#closeNow(code, reason, false));
  }

  abort(): void {
    this.#closing = true;
    this.#queue?.stop();
    this.#link.drop();
  }

  onText(text: string): void {
    this.#lastHeard = Date.now();
    if (!this.#closing) this.#handler!.onText(text);
  }

  onBinary(): void {
    this.#lastHeard = Date.now();
  }

  onPing(payload: Uint8Array): void {
    this.#lastHeard = Date.now();
    this.#writer.pong(payload);
  }

  onPong(): void {
    this.#lastHeard = Date.now();
  }

  onClose(code: number | undefined): void {
    // Our close was answered: the handshake is over, and the server ends the TCP connection.
    if (this.#writer.closed) return this.#link.drop();
    // Frames still queued are dropped, as a WebSocket does once the peer closes.
    this.#closeNow(code, "", true);
  }

  onFail(code: number, reason: string): void {
    this.#closeNow(code, reason, true);
  }

  /**
   * Sends a close frame behind what the connection was handed; the peer
   * then has a while to answer and end its side.
   */
  #closeNow(code: number | undefined, reason: string, dropQueue: boolean): void {
    this.#closing = true;
    if (dropQueue) this.#queue!.stop();
    if (this.#writer.closed || this.#ended) return;
    this.#writer.close(code, reason, false);
    this.#arm(this.#timings.closeWaitMs);
  }

  /** The reading loop: its frame lives as long as the connection, so it holds only one buffer. */
  async #read(): Promise<void> {
    const conn = this.#link.conn;
    const parser = this.#parser!;
    const idle = new Uint8Array(IDLE_READ_BYTES);
    let buf = idle;
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        // After a close or a failure the rest is read and dropped until the peer ends.
        if (!parser.done) parser.push(n === buf.length ? buf : buf.subarray(0, n));
        if (n === buf.length) {
          if (buf === idle) buf = new Uint8Array(STREAM_READ_BYTES);
        } else buf = idle;
      }
    } catch {
      // the peer or the gate closed the connection
    } finally {
      this.#end();
    }
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#closing = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue!.stop();
    this.#writer.stop();
    this.#link.drop();
    this.#handler!.onClose();
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#onTimer(), ms);
  }

  /** The keepalive; after a close frame, the end of the peer's time to answer. */
  #onTimer(): void {
    this.#timer = undefined;
    if (this.#ended) return;
    if (this.#writer.closed) return this.#link.drop();
    const keepalive = this.#timings.keepaliveMs;
    const now = Date.now();
    const since = Math.max(this.#pingedAt, this.#lastHeard);
    if (now - since < keepalive) return this.#arm(keepalive - (now - since));
    if (this.#pingedAt <= this.#lastHeard) {
      this.#pingedAt = now;
      this.#writer.ping();
      return this.#arm(keepalive);
    }
    // Nothing since the ping: as Deno's own socket ends it, a close frame, then the connection dropped.
    this.#closing = true;
    this.#queue!.stop();
    this.#writer.close(1001, "No response from ping frame.", true);
    this.#arm(this.#timings.closeWaitMs);
  }
}

/**
 * Bytes of one output buffer: a write takes as many waiting frames as fit
 * (a send queue's window is 64 KiB), encoded straight into it.
 */
const OUT_BUFFER_BYTES = 64 * 1024;
/** Output buffers kept for the next write, across all connections, at most. */
const FREE_BUFFERS_MAX = 8;
/**
 * Buffers no write holds any more. A write holds its buffer only while it
 * runs, so a few serve every connection that writes in the same turn; a
 * connection that stalls keeps one while its write waits, as it kept its
 * frames before.
 */
const freeBuffers: Uint8Array[] = [];

/**
 * Microtask hops a write waits before it takes what waits. A commit's hook
 * hands a frame as the commit settles (a job's `job.accepted`, see
 * `PendingRecord`) and the commit's waiters hand theirs two hops later
 * (the job's first envelopes and result, through `Store.write`): waiting
 * these hops puts both in one write, one `sendto` and one read for the
 * client instead of two, a turn of the event loop apart.
 */
export const WRITE_SETTLE_HOPS = 4;

/**
 * Frames to the client's connection: one write at a time, each taking
 * every frame that waits, so frames handed in the same turn of the event
 * loop (a commit's envelopes, a replay's page) go out in one write, encoded
 * straight into one buffer. It is the send queue's sink:
 * `bufferedAmount` counts the data frames not yet written (their UTF-16
 * units until they are encoded, then their bytes), as a WebSocket's does,
 * and each finished write tells the queue (`onWritten`), which never has
 * to look at it again to learn it drained.
 */
class FrameWriter implements FrameSink {
  readonly reportsDrain = true;
  #link: GateConn;
  #onWritten: () => void;
  /** What waits: data frames as text, control frames (a ping, the close) as bytes. */
  #out: Array<string | Uint8Array> = [];
  #outHead = 0;
  /** Data frames' UTF-16 units waiting in `#out`, and their bytes in the write that runs. */
  #waiting = 0;
  #inFlight = 0;
  /** A write runs, or is due at the end of this turn's synchronous run. */
  #writing = false;
  /** The latest ping's payload not yet answered: only the latest is (RFC 6455 §5.5.3). */
  #pong: Uint8Array | undefined;
  #closed = false;
  #dropAfterClose = false;
  #stopped = false;

  /**
   * @param link the connection
   * @param onWritten called after each write completes, so the queue hands over more
   */
  constructor(link: GateConn, onWritten: () => void) {
    this.#link = link;
    this.#onWritten = onWritten;
  }

  get bufferedAmount(): number {
    return this.#waiting + this.#inFlight;
  }

  /** Whether the close frame has been queued; nothing goes after it. */
  get closed(): boolean {
    return this.#closed;
  }

  send(text: string): void {
    if (this.#closed || this.#stopped) return;
    this.#out.push(text);
    this.#waiting += text.length;
    this.#kick();
  }

  pong(payload: Uint8Array): void {
    if (this.#closed || this.#stopped) return;
    this.#pong = payload;
    this.#kick();
  }

  ping(): void {
    if (this.#closed || this.#stopped) return;
    this.#out.push(encodeControlFrame(OPCODE_PING, new Uint8Array(0)));
    this.#kick();
  }

  /**
   * Queues the close frame last. Once it is written the write side ends
   * (FIN, so the peer reads the frame rather than a reset), or with `drop`
   * the connection is dropped.
   */
  close(code: number | undefined, reason: string, drop: boolean): void {
    if (this.#closed || this.#stopped) return;
    this.#closed = true;
    this.#dropAfterClose = drop;
    this.#pong = undefined;
    this.#out.push(encodeCloseFrame(code, reason));
    this.#kick();
  }

  /** Forgets everything waiting; the connection is gone. */
  stop(): void {
    this.#stopped = true;
    this.#out = [];
    this.#outHead = 0;
    this.#waiting = 0;
    this.#inFlight = 0;
    this.#pong = undefined;
  }

  /**
   * Starts a write once the synchronous run that handed this frame is over
   * and {@linkcode WRITE_SETTLE_HOPS} microtasks later, so the frames it and
   * the promise callbacks it settles hand after this one join the write.
   */
  #kick(): void {
    if (this.#writing) return;
    this.#writing = true;
    queueMicrotask(() => this.#write());
  }

  /**
   * Encodes what waits into one buffer, in order (a pong first: control
   * frames may go between data frames, and it need not wait behind them),
   * as much as fits; a frame larger than a buffer goes alone in its own.
   */
  #take(): Uint8Array | undefined {
    const out = this.#out;
    const pong = this.#pong;
    this.#pong = undefined;
    if (this.#outHead === out.length && pong === undefined) return undefined;
    const buf = freeBuffers.pop() ?? new Uint8Array(OUT_BUFFER_BYTES);
    let at = 0;
    if (pong !== undefined) at = put(buf, 0, encodeControlFrame(OPCODE_PONG, pong));
    while (this.#outHead < out.length) {
      const next = out[this.#outHead];
      let end: number;
      if (typeof next === "string") {
        end = encodeTextFrameInto(buf, at, next);
        if (end < 0) {
          if (at > 0) break;
          // Larger than a buffer: this frame alone, in one of its own.
          freeBuffer(buf);
          const frame = encodeTextFrame(next);
          this.#advance(next, frame.length);
          return frame;
        }
        this.#advance(next, end - at);
      } else {
        if (at + next.length > buf.length) break;
        end = put(buf, at, next);
        this.#outHead++;
      }
      at = end;
    }
    if (this.#outHead === out.length) {
      this.#out = [];
      this.#outHead = 0;
    } else if (this.#outHead > 1024 && this.#outHead * 2 > out.length) {
      this.#out = out.slice(this.#outHead);
      this.#outHead = 0;
    }
    return buf.subarray(0, at);
  }

  /** One data frame taken from what waits into the write: counted by its bytes from now on. */
  #advance(text: string, bytes: number): void {
    this.#out[this.#outHead++] = "";
    this.#waiting -= text.length;
    this.#inFlight += bytes;
  }

  async #write(): Promise<void> {
    const conn = this.#link.conn;
    for (let hop = 0; hop < WRITE_SETTLE_HOPS; hop++) await undefined;
    try {
      while (!this.#stopped) {
        const bytes = this.#take();
        if (bytes === undefined) break;
        let off = 0;
        while (off < bytes.length) off += await conn.write(bytes.subarray(off));
        freeBuffer(bytes);
        this.#inFlight = 0;
        if (!this.#stopped) this.#onWritten();
      }
      if (this.#closed && !this.#stopped) {
        if (this.#dropAfterClose) this.#link.drop();
        else await conn.closeWrite();
      }
    } catch {
      // the peer is gone, or the gate dropped the connection
      this.#link.drop();
    } finally {
      this.#writing = false;
    }
  }
}

/** Copies `bytes` into `buf` at `at`; returns the offset after them. */
function put(buf: Uint8Array, at: number, bytes: Uint8Array): number {
  buf.set(bytes, at);
  return at + bytes.length;
}

/** Keeps a finished write's buffer for the next one, when it is a whole output buffer. */
function freeBuffer(bytes: Uint8Array): void {
  const buf = new Uint8Array(bytes.buffer);
  if (buf.length === OUT_BUFFER_BYTES && freeBuffers.length < FREE_BUFFERS_MAX) {
    freeBuffers.push(buf);
  }
}
