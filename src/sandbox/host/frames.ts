/**
 * Length-prefixed JSON frames for the runtime ↔ sandbox process control
 * channel: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
 * The reader copies each byte once and checks a frame's length before
 * reading its body, so a peer can neither make it rescan its buffer nor
 * make it hold more than one frame's cap.
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
  return frameBytes(encoder.encode(JSON.stringify(value)));
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

/** Reassembles frames from chunks, keeping only unread chunks. */
class FrameBuffer {
  #chunks: Uint8Array[] = [];
  /** Bytes of `#chunks[0]` already consumed. */
  #head = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  /** Takes exactly `n` bytes off the front; the caller checked `size >= n`. */
  take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const first = this.#chunks[0];
      const count = Math.min(n - filled, first.length - this.#head);
      out.set(first.subarray(this.#head, this.#head + count), filled);
      filled += count;
      this.#head += count;
      if (this.#head === first.length) {
        this.#chunks.shift();
        this.#head = 0;
      }
    }
    this.#size -= n;
    return out;
  }
}

/**
 * Reads frames from a byte stream until it ends.
 *
 * @param stream the bytes
 * @param maxBytes the largest body accepted
 * @returns the decoded frames, in order
 * @throws {FrameTooLarge} as soon as a header announces a body over `maxBytes`
 * @throws {SyntaxError} when a body is not JSON
 */
export async function* readFrames(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
): AsyncGenerator<unknown> {
  const buf = new FrameBuffer();
  let want = -1;
  for await (const chunk of stream) {
    buf.push(chunk);
    while (true) {
      if (want < 0) {
        if (buf.size < 4) break;
        want = new DataView(buf.take(4).buffer).getUint32(0);
        if (want > maxBytes) throw new FrameTooLarge(want, maxBytes);
      }
      if (buf.size < want) break;
      const body = buf.take(want);
      want = -1;
      yield JSON.parse(decoder.decode(body));
    }
  }
}

/**
 * Writes frames to a byte stream in order. Frames queued while a write is in
 * flight go out together in the next write, so a burst of small messages
 * (events, credits) costs one system call instead of one each.
 */
export class FrameWriter {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #busy = false;
  #broken = false;

  /**
   * @param writable where frames go; the writer holds its lock
   */
  constructor(writable: WritableStream<Uint8Array>) {
    this.#writer = writable.getWriter();
  }

  /**
   * Queues one frame (from {@linkcode encodeFrame} or {@linkcode frameBytes}).
   * A broken stream drops it: the peer is gone, and its end is reported
   * elsewhere.
   *
   * @param frame the frame's bytes
   */
  write(frame: Uint8Array): void {
    if (this.#broken) return;
    this.#pending.push(frame);
    this.#pendingBytes += frame.length;
    if (!this.#busy) this.#flush();
  }

  async #flush(): Promise<void> {
    this.#busy = true;
    // Frames queued in this same turn join the first write.
    await Promise.resolve();
    while (this.#pending.length > 0 && !this.#broken) {
      const batch = this.#pending.length === 1
        ? this.#pending[0]
        : concat(this.#pending, this.#pendingBytes);
      this.#pending = [];
      this.#pendingBytes = 0;
      try {
        await this.#writer.write(batch);
      } catch {
        this.#broken = true;
        this.#pending = [];
      }
    }
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
