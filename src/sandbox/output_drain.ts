/**
 * Drains a sandbox process's stdout or stderr. Whatever an agent prints is
 * never control traffic: it is read in chunks, split into lines in one pass
 * (each byte looked at once, lines truncated), rate-limited into the
 * operator log, and a process that prints faster than the output budget is
 * reported so its job can be ended.
 *
 * @module
 */

/** Longest line kept for the operator log, bytes; the rest of the line is dropped. */
export const MAX_LINE_BYTES = 4096;
/** Lines per second a process may put into the operator log, and the burst above that. */
const LINE_RATE = 20;
const LINE_BURST = 100;
/** Bytes per second a process may print, and the burst above that, before its job ends. */
export const OUTPUT_RATE_BYTES = 256 * 1024;
/** See {@linkcode OUTPUT_RATE_BYTES}. */
export const OUTPUT_BURST_BYTES = 8 * 1024 * 1024;
/** How much of stderr's end is kept to explain a crash. */
const TAIL_BYTES = 2048;

/** Where drained output goes. */
export interface OutputSink {
  /** One (possibly truncated) line, within the log rate. */
  line(text: string): void;
  /** Lines dropped by the log rate since the last report. */
  dropped(count: number): void;
  /** The process printed more than the output budget; called once. */
  flood(): void;
}

/** A token bucket. */
class Bucket {
  #tokens: number;
  #at = Date.now();
  constructor(readonly rate: number, readonly burst: number) {
    this.#tokens = burst;
  }
  take(n: number): boolean {
    const now = Date.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) / 1000) * this.rate);
    this.#at = now;
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }
}

/** Reads one output stream to its end. */
export class OutputDrain {
  #sink: OutputSink;
  #decoder = new TextDecoder();
  /** The current line's kept bytes (at most MAX_LINE_BYTES). */
  #line = new Uint8Array(MAX_LINE_BYTES);
  #lineLength = 0;
  #lines = new Bucket(LINE_RATE, LINE_BURST);
  #bytes = new Bucket(OUTPUT_RATE_BYTES, OUTPUT_BURST_BYTES);
  #dropped = 0;
  #flooded = false;
  #tail = new Uint8Array(0);
  /** Settles when the stream ends. */
  readonly done: Promise<void>;

  /**
   * Starts draining.
   *
   * @param stream the process's stdout or stderr
   * @param sink where lines go
   */
  constructor(stream: ReadableStream<Uint8Array>, sink: OutputSink) {
    this.#sink = sink;
    this.done = this.#run(stream);
  }

  /** The last bytes the stream carried, decoded (for crash diagnosis). */
  get tail(): string {
    return this.#decoder.decode(this.#tail);
  }

  async #run(stream: ReadableStream<Uint8Array>): Promise<void> {
    try {
      for await (const chunk of stream) this.#take(chunk);
    } catch {
      // The process is gone; its exit is reported elsewhere.
    }
    if (this.#lineLength > 0) this.#emit();
    if (this.#dropped > 0) this.#sink.dropped(this.#dropped);
  }

  #take(chunk: Uint8Array): void {
    const keep = Math.min(TAIL_BYTES, chunk.length);
    const tail = new Uint8Array(Math.min(TAIL_BYTES, this.#tail.length + keep));
    tail.set(this.#tail.subarray(this.#tail.length - (tail.length - keep)));
    tail.set(chunk.subarray(chunk.length - keep), tail.length - keep);
    this.#tail = tail;
    if (this.#flooded) return;
    if (!this.#bytes.take(chunk.length)) {
      this.#flooded = true;
      this.#sink.flood();
      return;
    }
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      const room = MAX_LINE_BYTES - this.#lineLength;
      const piece = chunk.subarray(start, Math.min(end, start + room));
      this.#line.set(piece, this.#lineLength);
      this.#lineLength += piece.length;
      if (nl < 0) break;
      this.#emit();
      start = nl + 1;
    }
  }

  #emit(): void {
    const length = this.#lineLength;
    this.#lineLength = 0;
    if (!this.#lines.take(1)) {
      this.#dropped++;
      return;
    }
    if (this.#dropped > 0) {
      this.#sink.dropped(this.#dropped);
      this.#dropped = 0;
    }
    this.#sink.line(this.#decoder.decode(this.#line.subarray(0, length)));
  }
}
