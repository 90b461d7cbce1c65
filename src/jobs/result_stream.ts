/**
 * A job's streamed result: mints the `result_id`, numbers chunks, holds
 * back the newest chunk until the next one (or the end) says whether more
 * follow, and enforces the per-chunk and total caps.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { newUlid } from "../protocol/ids.ts";

/** Caps on streamed results. */
export interface ResultCaps {
  /** Largest decoded chunk, bytes (default 1 MiB). */
  chunkBytes: number;
  /** Largest whole result, bytes (default 256 MiB). */
  totalBytes: number;
}

/** The body of one `result_chunk` event. */
export interface ChunkBody {
  /** The result's id. */
  result_id: string;
  /** 0-based position. */
  chunk_seq: number;
  /** The data, as text or base64. */
  data: string;
  /** How `data` is encoded. */
  encoding: "utf8" | "base64";
  /** Whether more chunks follow. */
  more: boolean;
  [key: string]: unknown;
}

/**
 * Bytes a string takes as UTF-8, without encoding it.
 *
 * @param text the text
 * @returns its UTF-8 length
 */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Bytes that base64 text decodes to.
 *
 * @param text base64 text
 * @returns the decoded length
 */
export function base64Length(text: string): number {
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  return Math.floor((text.length * 3) / 4) - pad;
}

/** One job's streamed result in progress. */
export class ResultStream {
  /** The result's id, `res_` + ULID. */
  readonly resultId: string = `res_${newUlid()}`;
  /** Decoded bytes so far. */
  bytes = 0;
  /** Whether the agent closed the stream. */
  ended = false;
  #caps: ResultCaps;
  #next = 0;
  #held: { data: string; encoding: "utf8" | "base64" } | undefined;

  /**
   * @param caps size caps
   */
  constructor(caps: ResultCaps) {
    this.#caps = caps;
  }

  /**
   * Takes one piece from the agent.
   *
   * @param data the piece
   * @param encoding how it is encoded
   * @returns the previous piece, now known not to be the last, to emit
   * @throws {ArcpError} `INTERNAL_ERROR` past a cap or after the end
   */
  push(data: string, encoding: "utf8" | "base64"): ChunkBody | undefined {
    if (this.ended) {
      throw new ArcpError("INTERNAL_ERROR", "agent wrote to its streamed result after closing it");
    }
    const size = encoding === "utf8" ? utf8Length(data) : base64Length(data);
    if (size > this.#caps.chunkBytes) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `result chunk of ${size} bytes exceeds the ${this.#caps.chunkBytes}-byte chunk cap`,
      );
    }
    this.bytes += size;
    if (this.bytes > this.#caps.totalBytes) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `streamed result exceeds the ${this.#caps.totalBytes}-byte cap`,
      );
    }
    const previous = this.#held;
    this.#held = { data, encoding };
    return previous ? this.#chunk(previous, true) : undefined;
  }

  /**
   * Ends the stream.
   *
   * @returns the last chunk (empty when nothing was written), with `more: false`
   */
  end(): ChunkBody {
    this.ended = true;
    const last = this.#held ?? { data: "", encoding: "utf8" as const };
    this.#held = undefined;
    return this.#chunk(last, false);
  }

  #chunk(piece: { data: string; encoding: "utf8" | "base64" }, more: boolean): ChunkBody {
    return {
      result_id: this.resultId,
      chunk_seq: this.#next++,
      data: piece.data,
      encoding: piece.encoding,
      more,
    };
  }
}
