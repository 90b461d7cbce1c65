/**
 * The server side of RFC 6455 framing, without extensions: a parser that
 * takes a client's bytes in chunks of any size and reports whole messages
 * and control frames, failing the connection with the code RFC 6455 names
 * for each kind of bad input, and the encoders of the frames a server
 * sends. No I/O here: the gate's socket (`gate_socket.ts`) feeds and
 * writes the bytes.
 *
 * @module
 */

/** Close codes the parser fails a connection with. */
export const CLOSE_PROTOCOL_ERROR = 1002;
/** A text message (or close reason) that is not UTF-8. */
export const CLOSE_INVALID_DATA = 1007;
/** A message larger than the cap. */
export const CLOSE_TOO_BIG = 1009;

/** Opcodes (RFC 6455 §5.2). */
const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** Control frames carry at most this many payload bytes (RFC 6455 §5.5). */
const MAX_CONTROL_PAYLOAD = 125;
/** The longest frame head: 2 bytes, an 8-byte length, a 4-byte mask. */
const MAX_HEAD_BYTES = 14;

/** What the parser reports, in the order the bytes arrived. */
export interface FrameEvents {
  /** One whole text message (its fragments joined), valid UTF-8. */
  onText(text: string): void;
  /** One whole binary message was read and dropped (ARCP speaks text); its size in bytes. */
  onBinary(size: number): void;
  /** A ping, with its payload (at most 125 bytes). */
  onPing(payload: Uint8Array): void;
  /** A pong. */
  onPong(): void;
  /**
   * The peer's close frame: its code (undefined when the frame had none)
   * and reason. Nothing after it is parsed.
   */
  onClose(code: number | undefined, reason: string): void;
  /** The input broke the protocol: fail the connection with `code`. Nothing after it is parsed. */
  onFail(code: number, reason: string): void;
}

/** Where the parser is: reading a frame head, copying a kept payload, skipping a binary one, or done (after a close frame or a failure, input is ignored). */
const HEAD = 0;
const PAYLOAD = 1;
const SKIP = 2;
const DONE = 3;

/**
 * Strict decoding: a bad sequence throws (→ 1007), and a leading BOM is
 * kept as the text it is rather than stripped.
 */
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/**
 * Lenient decoding, which Deno runs in one native pass where the strict
 * decoder takes a slower general one: a text without U+FFFD in it came
 * from valid UTF-8 (a bad sequence always decodes to one), and one with it
 * is decoded again strictly to tell.
 */
const UTF8_LOOSE = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Decodes a whole text message, strictly.
 *
 * @throws TypeError when the bytes are not UTF-8
 */
function decodeText(bytes: Uint8Array): string {
  const text = UTF8_LOOSE.decode(bytes);
  return text.includes("\uFFFD") ? UTF8.decode(bytes) : text;
}

/**
 * Where a text message that arrived whole in one chunk is unmasked (see
 * {@linkcode FrameParser}'s `#readPayload`): shared by every parser, since
 * the bytes are decoded before anything else runs, and grown to the
 * largest such message, up to {@linkcode SCRATCH_MAX_BYTES}.
 */
let scratch = new Uint8Array(4096);
/** Messages past this size are unmasked into a buffer of their own. */
const SCRATCH_MAX_BYTES = 64 * 1024;

/**
 * Parses the frames a client sends. Each connection owns one; it holds a
 * 14-byte head buffer while idle, and a payload's bytes only once its
 * size has been checked against the cap (for a fragmented message, the
 * size of everything so far plus this frame).
 */
export class FrameParser {
  readonly #events: FrameEvents;
  readonly #maxMessageBytes: number;
  #state: number = HEAD;
  readonly #head = new Uint8Array(MAX_HEAD_BYTES);
  #headLength = 0;
  /** The frame being read. */
  #fin = false;
  #opcode = 0;
  /** Where the frame's mask sits in the head buffer, which is not reused before its payload is read. */
  #maskAt = 0;
  /** The kept payload being filled; undefined until its first bytes come. */
  #payload: Uint8Array | undefined;
  #payloadLength = 0;
  #payloadOffset = 0;
  #skipLeft = 0;
  /** The message being assembled from fragments: its kind (0 when none) and parts. */
  #messageOpcode = 0;
  #fragments: Uint8Array[] = [];
  #messageBytes = 0;

  /**
   * @param events where messages, control frames and failures go
   * @param maxMessageBytes the largest message, all fragments together
   */
  constructor(events: FrameEvents, maxMessageBytes: number) {
    this.#events = events;
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** Whether the parser has stopped (a close frame or a failure). */
  get done(): boolean {
    return this.#state === DONE;
  }

  /**
   * Takes the next bytes; they may end anywhere, inside a head or a
   * payload. The chunk is not kept: the caller may reuse it.
   *
   * @param chunk bytes as read
   */
  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      switch (this.#state) {
        case HEAD:
          at = this.#readHead(chunk, at);
          break;
        case PAYLOAD:
          at = this.#readPayload(chunk, at);
          break;
        case SKIP: {
          const n = Math.min(this.#skipLeft, chunk.length - at);
          this.#skipLeft -= n;
          at += n;
          if (this.#skipLeft === 0) this.#endFrame(undefined);
          break;
        }
        case DONE:
          return;
      }
    }
  }

  /** Copies head bytes until the head is whole, then checks it; returns the next offset. */
  #readHead(chunk: Uint8Array, at: number): number {
    const head = this.#head;
    while (at < chunk.length) {
      head[this.#headLength++] = chunk[at++];
      const need = headLength(head, this.#headLength);
      if (need !== this.#headLength) continue;
      this.#headLength = 0;
      this.#startFrame();
      return at;
    }
    return at;
  }

  /** Checks a whole head and sets up the payload's reading. */
  #startFrame(): void {
    const head = this.#head;
    const b0 = head[0];
    const b1 = head[1];
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) return this.#fail(CLOSE_PROTOCOL_ERROR, "reserved bits set");
    if ((b1 & 0x80) === 0) return this.#fail(CLOSE_PROTOCOL_ERROR, "client frames must be masked");
    const code = b1 & 0x7f;
    let length: number;
    let maskAt: number;
    if (code < 126) {
      length = code;
      maskAt = 2;
    } else if (code === 126) {
      length = (head[2] << 8) | head[3];
      maskAt = 4;
    } else {
      // The high 32 bits must be zero in practice: the top bit is forbidden,
      // and anything past 2^32 is far over any cap; reject before arithmetic.
      if (head[2] & 0x80) {
        return this.#fail(CLOSE_PROTOCOL_ERROR, "frame length has its high bit set");
      }
      const high = ((head[2] << 24) >>> 0) + (head[3] << 16) + (head[4] << 8) + head[5];
      const low = ((head[6] << 24) >>> 0) + (head[7] << 16) + (head[8] << 8) + head[9];
      length = high === 0 ? low : Infinity;
      maskAt = 10;
    }
    this.#maskAt = maskAt;
    this.#fin = fin;
    this.#opcode = opcode;

    if (opcode >= 0x8) {
      if (opcode > OP_PONG) return this.#fail(CLOSE_PROTOCOL_ERROR, `unknown opcode ${opcode}`);
      if (!fin) return this.#fail(CLOSE_PROTOCOL_ERROR, "fragmented control frame");
      if (length > MAX_CONTROL_PAYLOAD) {
        return this.#fail(CLOSE_PROTOCOL_ERROR, "control frame over 125 bytes");
      }
      return this.#expect(length);
    }
    if (opcode === OP_CONTINUATION) {
      if (this.#messageOpcode === 0) {
        return this.#fail(CLOSE_PROTOCOL_ERROR, "continuation frame without a message");
      }
    } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
      if (this.#messageOpcode !== 0) {
        return this.#fail(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one");
      }
      this.#messageOpcode = opcode;
      this.#messageBytes = 0;
    } else {
      return this.#fail(CLOSE_PROTOCOL_ERROR, `unknown opcode ${opcode}`);
    }
    // The cap holds for the whole message, checked before any byte of it is kept.
    const total = this.#messageBytes + length;
    if (total > this.#maxMessageBytes) {
      const size = Number.isFinite(total) ? `${total} bytes` : "over 4 GiB";
      return this.#fail(CLOSE_TOO_BIG, `message of ${size} exceeds ${this.#maxMessageBytes}`);
    }
    this.#messageBytes = total;
    if (this.#messageOpcode === OP_BINARY) {
      // Binary messages are not ARCP: counted against the cap, never kept.
      if (length === 0) return this.#endFrame(undefined);
      this.#skipLeft = length;
      this.#state = SKIP;
      return;
    }
    this.#expect(length);
  }

  /** Sets up reading a kept payload of `length` bytes. */
  #expect(length: number): void {
    if (length === 0) return this.#endFrame(new Uint8Array(0));
    this.#payloadLength = length;
    this.#payload = undefined;
    this.#payloadOffset = 0;
    this.#state = PAYLOAD;
  }

  /** Copies and unmasks payload bytes; returns the next offset. */
  #readPayload(chunk: Uint8Array, at: number): number {
    const head = this.#head;
    const m = this.#maskAt;
    const length = this.#payloadLength;
    if (this.#payload === undefined) {
      // A whole unfragmented text message in this chunk (a client's usual
      // message) is unmasked into the shared scratch buffer and decoded at
      // once: no buffer allocated per message.
      if (
        this.#fin && this.#opcode === OP_TEXT && length <= SCRATCH_MAX_BYTES &&
        chunk.length - at >= length
      ) {
        if (scratch.length < length) scratch = new Uint8Array(Math.max(length, 2 * scratch.length));
        for (let i = 0; i < length; i++) scratch[i] = chunk[at + i] ^ head[m + (i & 3)];
        this.#endText(scratch.subarray(0, length));
        return at + length;
      }
      this.#payload = new Uint8Array(length);
    }
    const payload = this.#payload;
    const n = Math.min(payload.length - this.#payloadOffset, chunk.length - at);
    let o = this.#payloadOffset;
    for (let i = 0; i < n; i++, o++) payload[o] = chunk[at + i] ^ head[m + (o & 3)];
    this.#payloadOffset = o;
    if (o === payload.length) {
      this.#payload = undefined;
      this.#endFrame(payload);
    }
    return at + n;
  }

  /** A frame is whole: report it, or keep it as a fragment. */
  #endFrame(payload: Uint8Array | undefined): void {
    this.#state = HEAD;
    switch (this.#opcode) {
      case OP_PING:
        return this.#events.onPing(payload!);
      case OP_PONG:
        return this.#events.onPong();
      case OP_CLOSE:
        return this.#close(payload!);
    }
    if (payload !== undefined && payload.length > 0) this.#fragments.push(payload);
    if (!this.#fin) return;
    const opcode = this.#messageOpcode;
    const parts = this.#fragments;
    const size = this.#messageBytes;
    this.#messageOpcode = 0;
    this.#fragments = [];
    this.#messageBytes = 0;
    if (opcode === OP_BINARY) return this.#events.onBinary(size);
    this.#endText(parts.length === 1 ? parts[0] : joinBytes(parts, size));
  }

  /** A text message is whole: decode and report it. */
  #endText(bytes: Uint8Array): void {
    this.#state = HEAD;
    this.#messageOpcode = 0;
    this.#messageBytes = 0;
    let text: string;
    try {
      text = decodeText(bytes);
    } catch {
      return this.#fail(CLOSE_INVALID_DATA, "text message is not UTF-8");
    }
    this.#events.onText(text);
  }

  /** Checks a close frame's payload (RFC 6455 §5.5.1, §7.4) and reports it. */
  #close(payload: Uint8Array): void {
    if (payload.length === 0) {
      this.#state = DONE;
      return this.#events.onClose(undefined, "");
    }
    if (payload.length === 1) return this.#fail(CLOSE_PROTOCOL_ERROR, "close payload of one byte");
    const code = (payload[0] << 8) | payload[1];
    if (!isValidCloseCode(code)) {
      return this.#fail(CLOSE_PROTOCOL_ERROR, `invalid close code ${code}`);
    }
    let reason: string;
    try {
      reason = UTF8.decode(payload.subarray(2));
    } catch {
      return this.#fail(CLOSE_INVALID_DATA, "close reason is not UTF-8");
    }
    this.#state = DONE;
    this.#events.onClose(code, reason);
  }

  #fail(code: number, reason: string): void {
    this.#state = DONE;
    this.#payload = undefined;
    this.#fragments = [];
    this.#events.onFail(code, reason);
  }
}

/**
 * The length of a frame head given its first `have` bytes: 2 until the
 * length code is known, then the full size.
 */
function headLength(head: Uint8Array, have: number): number {
  if (have < 2) return 2;
  const code = head[1] & 0x7f;
  const masked = (head[1] & 0x80) !== 0 ? 4 : 0;
  // An unmasked head is checked (and refused) as soon as its second byte is in.
  if (!masked) return 2;
  return (code < 126 ? 2 : code === 126 ? 4 : 10) + masked;
}

/**
 * The bytes of several parts, one after another, in one array.
 *
 * @param parts the parts, in order
 * @param size their total length, when the caller already counted it
 * @returns the joined bytes
 * @example
 * ```ts
 * import { joinBytes } from "./ws_frames.ts";
 * joinBytes([new Uint8Array([1]), new Uint8Array([2, 3])]); // Uint8Array [1, 2, 3]
 * ```
 */
export function joinBytes(
  parts: Uint8Array[],
  size: number = parts.reduce((n, part) => n + part.length, 0),
): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Whether a peer may send `code` in a close frame: the codes RFC 6455
 * defines for use on the wire (not 1004–1006, 1015), the IANA-registered
 * 1012–1014, and the ranges for libraries and applications.
 *
 * @param code the code
 * @returns whether it is valid on the wire
 */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/** Room kept before a text's bytes for the longest server head (no mask). */
const TEXT_HEAD_ROOM = 10;
/** Texts up to this many UTF-16 units are encoded once into a buffer sized for the worst case. */
const ENCODE_IN_PLACE_UNITS = 16 * 1024;
const UTF8_ENCODER = new TextEncoder();

/**
 * One unmasked, unfragmented text frame: head and payload in one buffer,
 * so the frame goes out in one write.
 *
 * @param text the message
 * @returns the frame's bytes
 * @example
 * ```ts
 * import { encodeTextFrame } from "./ws_frames.ts";
 * encodeTextFrame("hi"); // Uint8Array [0x81, 0x02, 0x68, 0x69]
 * ```
 */
export function encodeTextFrame(text: string): Uint8Array {
  if (text.length <= ENCODE_IN_PLACE_UNITS) {
    // At most three bytes per UTF-16 unit; the unused tail is cut off by the view.
    const buf = new Uint8Array(TEXT_HEAD_ROOM + text.length * 3);
    const { written } = UTF8_ENCODER.encodeInto(text, buf.subarray(TEXT_HEAD_ROOM));
    const start = TEXT_HEAD_ROOM - writeHead(buf, TEXT_HEAD_ROOM, OP_TEXT, written);
    return buf.subarray(start, TEXT_HEAD_ROOM + written);
  }
  const payload = UTF8_ENCODER.encode(text);
  const head = headSize(payload.length);
  const frame = new Uint8Array(head + payload.length);
  writeHead(frame, head, OP_TEXT, payload.length);
  frame.set(payload, head);
  return frame;
}

/**
 * Encodes one unmasked, unfragmented text frame into `buf` at `at`, if it
 * fits in what is left of `buf`: several frames then go out in one write,
 * and no buffer is allocated per frame. The head is sized for the most the
 * payload can take there (three bytes per UTF-16 unit, at most the room
 * left); one that comes out shorter moves the payload back to meet it.
 *
 * @param buf where the frame goes
 * @param at its first byte's offset
 * @param text the message
 * @returns the offset after the frame, or -1 when it did not fit (the
 *   bytes from `at` on are then garbage; nothing before `at` was touched)
 * @example
 * ```ts
 * import { encodeTextFrameInto } from "./ws_frames.ts";
 * const buf = new Uint8Array(16);
 * const end = encodeTextFrameInto(buf, 0, "hi"); // 4
 * encodeTextFrameInto(buf, end, "there"); // 11: two frames, one after the other
 * ```
 */
export function encodeTextFrameInto(buf: Uint8Array, at: number, text: string): number {
  const room = buf.length - at;
  const reserve = headSize(Math.min(text.length * 3, room));
  if (room < reserve) return -1;
  const { read, written } = UTF8_ENCODER.encodeInto(text, buf.subarray(at + reserve));
  if (read < text.length) return -1;
  const size = headSize(written);
  if (size < reserve) buf.copyWithin(at + size, at + reserve, at + reserve + written);
  writeHead(buf, at + size, OP_TEXT, written);
  return at + size + written;
}

/**
 * One control frame (ping, pong or close) as a server sends it.
 *
 * @param opcode 0x8 close, 0x9 ping, 0xA pong
 * @param payload at most 125 bytes
 * @returns the frame's bytes
 * @example
 * ```ts
 * import { encodeControlFrame } from "./ws_frames.ts";
 * encodeControlFrame(0xa, new Uint8Array(0)); // an empty pong
 * ```
 */
export function encodeControlFrame(opcode: number, payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_CONTROL_PAYLOAD) throw new RangeError("control payload over 125 bytes");
  const frame = new Uint8Array(2 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = payload.length;
  frame.set(payload, 2);
  return frame;
}

/**
 * A close frame's payload: the code and a reason cut to fit 125 bytes at a
 * character boundary.
 *
 * @param code the close code, or undefined for an empty payload
 * @param reason why, in a few words
 * @returns the close frame
 * @example
 * ```ts
 * import { encodeCloseFrame } from "./ws_frames.ts";
 * encodeCloseFrame(1000, "bye");
 * ```
 */
export function encodeCloseFrame(code: number | undefined, reason = ""): Uint8Array {
  if (code === undefined) return encodeControlFrame(OP_CLOSE, new Uint8Array(0));
  const payload = new Uint8Array(MAX_CONTROL_PAYLOAD);
  payload[0] = code >> 8;
  payload[1] = code & 0xff;
  // encodeInto never splits a character, so the cut reason stays UTF-8.
  const { written } = UTF8_ENCODER.encodeInto(reason, payload.subarray(2));
  return encodeControlFrame(OP_CLOSE, payload.subarray(0, 2 + written));
}

/** Ping opcode, for the socket's keepalive. */
export const OPCODE_PING = OP_PING;
/** Pong opcode. */
export const OPCODE_PONG = OP_PONG;

function headSize(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

/** Writes a server head ending right before `end`; returns its size. */
function writeHead(buf: Uint8Array, end: number, opcode: number, length: number): number {
  const size = headSize(length);
  const at = end - size;
  buf[at] = 0x80 | opcode;
  if (length < 126) buf[at + 1] = length;
  else if (length < 65536) {
    buf[at + 1] = 126;
    buf[at + 2] = length >> 8;
    buf[at + 3] = length & 0xff;
  } else {
    buf[at + 1] = 127;
    // Frames here stay far below 2^32 bytes: the high word is zero.
    buf.fill(0, at + 2, at + 6);
    buf[at + 6] = (length >>> 24) & 0xff;
    buf[at + 7] = (length >>> 16) & 0xff;
    buf[at + 8] = (length >>> 8) & 0xff;
    buf[at + 9] = length & 0xff;
  }
  return size;
}
