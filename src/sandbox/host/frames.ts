/**
 * Length-prefixed JSON frames for the runtime ↔ sandbox process control
 * channel: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
 * The reader checks a frame's length before reading its body and never
 * rescans what it has read, so a peer can neither make it rescan its buffer
 * nor make it hold more than one frame's cap.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A frame announced a length over the reader's cap. */
export class FrameTooLarge extends Error {
  /** The announced length, bytes. */
  readonly size: number;
  /** The cap, bytes. */
  readonly cap: number;

  /**
   * @param size the announced length
   * @param cap the reader's cap
   */
  constructor(size: number, cap: number) {
    super(`control frame of ${size} bytes exceeds the ${cap}-byte cap`);
    this.name = "FrameTooLarge";
    this.size = size;
    this.cap = cap;
  }
}

/**
 * Encodes one frame.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./frames.ts";
 * console.log(encodeFrame({ a: 1 }).length); // 4 + 7
 * ```
 *
 * @param value a JSON-serializable value
 * @returns the frame's bytes
 */
export function encodeFrame(value: unknown): Uint8Array {
  return frameText(JSON.stringify(value));
}

/** Texts up to this many UTF-16 units are encoded straight behind their header. */
const DIRECT_UNITS = 16 * 1024;

/**
 * Frames a JSON text. A small one (every per-job message) is encoded once,
 * straight behind its header, instead of encoded and then copied.
 *
 * @example
 * ```ts
 * import { frameText } from "./frames.ts";
 * console.log(frameText('{"a":1}').length); // 4 + 7
 * ```
 *
 * @param text JSON
 * @returns the frame's bytes; its body is `length - 4` bytes
 */
export function frameText(text: string): Uint8Array {
  if (text.length > DIRECT_UNITS) return frameBytes(encoder.encode(text));
  // A UTF-16 unit takes at most 3 bytes of UTF-8.
  const out = new Uint8Array(4 + text.length * 3);
  const { written } = encoder.encodeInto(text, out.subarray(4));
  new DataView(out.buffer).setUint32(0, written);
  return out.subarray(0, 4 + written);
}

/**
 * Frames an already encoded body.
 *
 * @param body UTF-8 JSON bytes
 * @returns the frame's bytes
 */
export function frameBytes(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

/** What frames are read from: a connection's own `read` (no stream machinery per chunk). */
export interface FrameSource {
  /** Reads into `p`; resolves with the bytes read, or null at the end. */
  read(p: Uint8Array): Promise<number | null>;
}

/** What frames are written to: a connection's own `write`. */
export interface FrameSink {
  /** Writes some of `p`; resolves with how many bytes it took. */
  write(p: Uint8Array): Promise<number>;
}

/** The read buffer a reader starts with, and returns to after a large frame. */
const READ_BYTES = 64 * 1024;

/**
 * Reads frames from a connection. Reads land in one buffer that frames are
 * decoded from in place; only the unread tail of a partial frame is moved,
 * and the buffer grows to a large frame's size only once its header is read
 * and within the cap. {@linkcode FrameReader.pump} hands each frame's text
 * to a callback as it is read, with no promise per frame: a job's frame is
 * read by a thread just woken for it, where every extra turn counts.
 */
export class FrameReader {
  #source: FrameSource;
  #maxBytes: number;
  #buf = new Uint8Array(READ_BYTES);
  #view = new DataView(this.#buf.buffer);
  #start = 0;
  #end = 0;
  /** Bytes the frame at `#start` needs in the buffer, header included. */
  #need = 4;

  /**
   * @param source the connection
   * @param maxBytes the largest body accepted
   */
  constructor(source: FrameSource, maxBytes: number) {
    this.#source = source;
    this.#maxBytes = maxBytes;
  }

  /**
   * The next frame's body.
   *
   * @returns its text, or undefined once the connection ended
   * @throws {FrameTooLarge} as soon as a header announces a body over the cap
   */
  async next(): Promise<string | undefined> {
    while (true) {
      const text = this.#take();
      if (text !== undefined) return text;
      if (!await this.#fill()) return undefined;
    }
  }

  /**
   * Hands every frame's body to `onFrame`, in order, until the connection
   * ends. When `onFrame` returns a promise, the next frame waits for it.
   *
   * @param onFrame takes one frame's text
   * @throws {FrameTooLarge} as soon as a header announces a body over the cap
   */
  async pump(onFrame: (text: string) => void | Promise<void>): Promise<void> {
    while (true) {
      for (let text = this.#take(); text !== undefined; text = this.#take()) {
        const wait = onFrame(text);
        if (wait) await wait;
      }
      if (!await this.#fill()) return;
    }
  }

  /** Decodes the frame at the front of the buffer, when all of it is there. */
  #take(): string | undefined {
    const start = this.#start;
    if (this.#end - start < 4) return undefined;
    const want = this.#view.getUint32(start);
    if (want > this.#maxBytes) throw new FrameTooLarge(want, this.#maxBytes);
    if (this.#end - start < 4 + want) {
      this.#need = 4 + want;
      return undefined;
    }
    this.#start = start + 4 + want;
    this.#need = 4;
    return decoder.decode(this.#buf.subarray(start + 4, this.#start));
  }

  /** Makes room for the frame being read and reads; false at the end. */
  async #fill(): Promise<boolean> {
    const need = this.#need;
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
      if (this.#buf.length > READ_BYTES && need <= READ_BYTES) {
        this.#setBuf(new Uint8Array(READ_BYTES));
      }
    }
    if (need > this.#buf.length) {
      const grown = new Uint8Array(need);
      grown.set(this.#buf.subarray(this.#start, this.#end));
      this.#setBuf(grown);
      this.#end -= this.#start;
      this.#start = 0;
    } else if (this.#buf.length - this.#start < need || this.#end === this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const n = await this.#source.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  #setBuf(buf: Uint8Array<ArrayBuffer>): void {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer);
  }
}

/**
 * Reads frames from a connection until it ends (see {@linkcode FrameReader}).
 *
 * @param source the connection
 * @param maxBytes the largest body accepted
 * @returns the decoded frames, in order
 * @throws {FrameTooLarge} as soon as a header announces a body over `maxBytes`
 * @throws {SyntaxError} when a body is not JSON
 */
export async function* readFrames(
  source: FrameSource,
  maxBytes: number,
): AsyncGenerator<unknown> {
  const reader = new FrameReader(source, maxBytes);
  for (let text = await reader.next(); text !== undefined; text = await reader.next()) {
    yield JSON.parse(text);
  }
}

/**
 * Writes frames to a connection in order. Frames queued while a write is in
 * flight go out together in the next write, so a burst of small messages
 * (events, credits) costs one system call instead of one each.
 */
export class FrameWriter {
  #sink: FrameSink;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #busy = false;
  #broken = false;

  /**
   * @param sink where frames go (a connection)
   */
  constructor(sink: FrameSink) {
    this.#sink = sink;
  }

  /**
   * Queues one frame (from {@linkcode encodeFrame} or {@linkcode frameBytes}).
   * A broken connection drops it: the peer is gone, and its end is reported
   * elsewhere.
   *
   * @param frame the frame's bytes
   */
  write(frame: Uint8Array): void {
    if (this.#broken) return;
    this.#pending.push(frame);
    this.#pendingBytes += frame.length;
    if (this.#busy) return;
    this.#busy = true;
    // Frames queued in this same turn join the first write.
    queueMicrotask(this.#next);
  }

  /**
   * Writes what is queued, then what was queued meanwhile, until nothing is.
   * Callbacks, not an async loop: most writes carry one frame of one job,
   * sent by a thread just woken for it, where each promise is paid cold.
   */
  #next = (): void => {
    if (this.#pending.length === 0 || this.#broken) {
      this.#busy = false;
      return;
    }
    const batch = this.#pending.length === 1
      ? this.#pending[0]
      : concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#send(batch);
  };

  #send(batch: Uint8Array): void {
    let written: Promise<number>;
    try {
      written = this.#sink.write(batch);
    } catch {
      return this.#break();
    }
    written.then(
      (n) => n < batch.length ? this.#send(batch.subarray(n)) : this.#next(),
      () => this.#break(),
    );
  }

  #break(): void {
    this.#broken = true;
    this.#pending = [];
    this.#busy = false;
  }
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
