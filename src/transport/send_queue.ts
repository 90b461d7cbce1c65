/**
 * The outbound queue of one WebSocket. Deno's `WebSocket.send` never
 * blocks: every frame not yet written waits in the runtime as a task of its
 * own, which costs about 1 KiB beyond the frame's text (measured on Deno
 * 2.9: 40 MiB of 250-byte frames queued to sockets that were not read grew
 * the process by 200 MiB). So the socket is given only a small window of
 * bytes at a time, and the rest waits here as plain strings, which cost
 * about their length; what counts against the cap is then what the memory
 * holds.
 *
 * @module
 */

/** What the queue needs of a socket. */
export interface FrameSink {
  /** Bytes handed to the socket and not yet written. */
  readonly bufferedAmount: number;
  /** Hands one text frame to the socket. */
  send(text: string): void;
  /**
   * True when the socket calls {@linkcode SendQueue.drained} itself each
   * time it has written what it held: the queue then waits for that call
   * instead of looking at the socket again and again.
   */
  readonly reportsDrain?: boolean;
}

/** Options of {@linkcode SendQueue}. */
export interface SendQueueOptions {
  /** Bytes the socket may hold at a time; the rest waits in the queue. */
  windowBytes: number;
  /** Bytes queued in all (socket and queue) past which `onOverflow` is called. */
  maxBytes: number;
  /** Called once, when a frame takes the total past `maxBytes`. */
  onOverflow: () => void;
}

/** The window of a WebSocket: enough to keep a reading client's kernel buffers full between polls. */
export const SOCKET_WINDOW_BYTES = 64 * 1024;

/**
 * Deno's WebSocket has no drain event, so a queue in front of one that
 * waits looks at the socket again (the gate's own socket says when it has
 * written, and is not looked at). While the socket drains (a look finds it holding less than
 * the last, or frames moved) it looks again on the next turn of the event
 * loop: a timer's least delay is about 2 ms on Deno 2.9, in which a reading
 * client empties a 64 KiB window several times over, so polling by timer
 * held a resume replay to one window per 2 ms. A socket that stops draining
 * is looked at on a few more turns, then by timer less and less often, so a
 * stalled client costs next to nothing while it waits for the cap or its
 * session's stall timeout.
 */
const IDLE_TURNS = 3;
const POLL_MIN_MS = 1;
const POLL_MAX_MS = 250;

/** A bounded outbound queue in front of one socket. */
export class SendQueue {
  #sink: FrameSink;
  #options: SendQueueOptions;
  #texts: string[] = [];
  #head = 0;
  #queuedBytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #turn: ReturnType<typeof setImmediate> | undefined;
  /** The socket's bytes at the last look, and the looks since it last drained. */
  #lastBuffered = 0;
  #idleTurns = 0;
  #pollMs = POLL_MIN_MS;
  #whenEmpty: (() => void) | undefined;
  #overflowed = false;
  #stopped = false;

  /**
   * @param sink the socket
   * @param options window, cap and what happens past the cap
   */
  constructor(sink: FrameSink, options: SendQueueOptions) {
    this.#sink = sink;
    this.#options = options;
  }

  /**
   * Bytes queued to this socket: those the socket holds plus those waiting
   * here (counted as UTF-16 units, which is what a one-byte string costs).
   */
  get bufferedAmount(): number {
    return this.#sink.bufferedAmount + this.#queuedBytes;
  }

  /** Whether nothing waits here (the socket may still hold its window). */
  get empty(): boolean {
    return this.#head === this.#texts.length;
  }

  /**
   * Queues one frame; hands it to the socket at once when the window has
   * room and nothing waits ahead of it.
   *
   * @param text the frame's text
   */
  push(text: string): void {
    if (this.#stopped) return;
    if (this.empty && this.#sink.bufferedAmount < this.#options.windowBytes) {
      this.#sink.send(text);
    } else {
      this.#texts.push(text);
      this.#queuedBytes += text.length;
      this.#watch();
    }
    if (!this.#overflowed && this.bufferedAmount > this.#options.maxBytes) {
      this.#overflowed = true;
      this.#options.onOverflow();
    }
  }

  /**
   * Runs `fn` once every queued frame has been handed to the socket (at once
   * when none waits). Frames pushed meanwhile go first too.
   *
   * @param fn what to run
   */
  whenEmpty(fn: () => void): void {
    if (this.empty) fn();
    else this.#whenEmpty = fn;
  }

  /**
   * The socket has written what it held: hands it what waits, up to its
   * window. Only a socket that `reportsDrain` calls this, after each write.
   */
  drained(): void {
    if (!this.#stopped && !this.empty) this.#flush();
  }

  /** Drops every frame still waiting here and stops; later pushes are ignored. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#turn !== undefined) clearImmediate(this.#turn);
    this.#turn = undefined;
    this.#texts = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    this.#whenEmpty = undefined;
  }

  /** Starts looking at the socket, unless a look is already due or the socket will say when it drained. */
  #watch(): void {
    // Frames wait only behind a full window, and a socket that reports its
    // drain calls `drained` once the write of that window completes.
    if (this.#sink.reportsDrain) return;
    if (this.#timer !== undefined || this.#turn !== undefined) return;
    this.#lastBuffered = this.#sink.bufferedAmount;
    this.#idleTurns = 0;
    this.#pollMs = POLL_MIN_MS;
    this.#turn = setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#timer = undefined;
    this.#turn = undefined;
    if (this.#stopped) return;
    let held = this.#sink.bufferedAmount;
    const drained = held < this.#lastBuffered;
    const before = this.#head;
    while (!this.empty) {
      // What the socket was handed is counted here at its most (a UTF-16
      // unit is at most three bytes of UTF-8), and it is asked again only
      // once that count fills the window: never past it by more than a frame.
      if (held >= this.#options.windowBytes) {
        held = this.#sink.bufferedAmount;
        if (held >= this.#options.windowBytes) break;
      }
      const text = this.#texts[this.#head];
      // Let the sent text go now, not when the array is next cut.
      this.#texts[this.#head++] = "";
      this.#queuedBytes -= text.length;
      this.#sink.send(text);
      held += text.length * 3;
    }
    if (this.empty) {
      this.#texts = [];
      this.#head = 0;
      const fn = this.#whenEmpty;
      this.#whenEmpty = undefined;
      fn?.();
      return;
    }
    const moved = this.#head > before;
    if (this.#head > 1024 && this.#head * 2 > this.#texts.length) {
      this.#texts = this.#texts.slice(this.#head);
      this.#head = 0;
    }
    if (this.#sink.reportsDrain) return;
    this.#lastBuffered = this.#sink.bufferedAmount;
    if (moved || drained) {
      this.#idleTurns = 0;
      this.#pollMs = POLL_MIN_MS;
    }
    if (this.#idleTurns++ < IDLE_TURNS) {
      this.#turn = setImmediate(() => this.#flush());
    } else {
      this.#timer = setTimeout(() => this.#flush(), this.#pollMs);
      this.#pollMs = Math.min(POLL_MAX_MS, this.#pollMs * 2);
    }
  }
}
