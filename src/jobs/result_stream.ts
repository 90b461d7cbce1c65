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
 * Bytes a string takes as UTF-8, without encoding it: what `TextEncoder`
 * makes of it, so a surrogate pair is 4 bytes and a lone surrogate 3 (it
 * becomes U+FFFD, as in every client that decodes the JSON and encodes the text).
 *
 * @param text the text
 * @returns its UTF-8 length
 */
export function utf8Length(text: string): number {
  // Most envelopes are ASCII, where the answer is the length; the regex runs natively.
  if (!NON_ASCII.test(text)) return text.length;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Any character outside ASCII. */
const NON_ASCII = /[\u0080-\uffff]/;

/**
 * Whether a string is all ASCII: then its UTF-8 length is its length, and
 * {@linkcode utf8Length} of a text made of it and other parts is additive.
 *
 * @param text the text
 * @returns true when every character is below U+0080
 */
export function isAscii(text: string): boolean {
  return !NON_ASCII.test(text);
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** Whether a char code is in the base64 alphabet (RFC 4648 §4). */
function isBase64Char(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x2b || c === 0x2f;
}

/**
 * Bytes that base64 text decodes to, when it is well formed: the RFC 4648
 * alphabet, padded to a multiple of 4 characters, `=` only at the end.
 *
 * @param text base64 text
 * @returns the decoded length, or -1 when the text is not well-formed base64
 */
export function base64Length(text: string): number {
  if (text.length % 4 !== 0) return -1;
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  for (let i = 0; i < text.length - pad; i++) {
    if (!isBase64Char(text.charCodeAt(i))) return -1;
  }
  return (text.length / 4) * 3 - pad;
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
   * @throws {ArcpError} `INTERNAL_ERROR` past a cap, after the end, or for
   *   base64 data that is not well formed
   */
  push(data: string, encoding: "utf8" | "base64"): ChunkBody | undefined {
    if (this.ended) {
      throw new ArcpError("INTERNAL_ERROR", "agent wrote to its streamed result after closing it");
    }
    const size = encoding === "utf8" ? utf8Length(data) : base64Length(data);
    if (size < 0) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `result chunk #${this.#next + (this.#held ? 1 : 0)} is not well-formed base64`,
      );
    }
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
