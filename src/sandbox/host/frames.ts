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
