import { deepEqual, equal, ok } from "assert";
import {
  CLOSE_INVALID_DATA,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_TOO_BIG,
  encodeCloseFrame,
  encodeControlFrame,
  encodeTextFrame,
  encodeTextFrameInto,
  type FrameEvents,
  FrameParser,
  isValidCloseCode,
  joinBytes,
} from "./ws_frames.ts";

/** What the parser reported, one entry per event, in order. */
type Event =
  | ["text", string]
  | ["binary", number]
  | ["ping", number[]]
  | ["pong"]
  | ["close", number | undefined, string]
  | ["fail", number];

class Recorder implements FrameEvents {
  readonly events: Event[] = [];
  onText(text: string): void {
    this.events.push(["text", text]);
  }
  onBinary(size: number): void {
    this.events.push(["binary", size]);
  }
  onPing(payload: Uint8Array): void {
    this.events.push(["ping", [...payload]]);
  }
  onPong(): void {
    this.events.push(["pong"]);
  }
  onClose(code: number | undefined, reason: string): void {
    this.events.push(["close", code, reason]);
  }
  onFail(code: number): void {
    this.events.push(["fail", code]);
  }
}

interface FrameSpec {
  opcode: number;
  payload?: Uint8Array | string;
  fin?: boolean;
  /** Reserved bits, already shifted into place (0x40, 0x20, 0x10). */
  rsv?: number;
  masked?: boolean;
  /** Length encoding: the shortest (default), or forced 16- or 64-bit. */
  length?: "min" | 16 | 64;
  /** A length to write in place of the payload's (the payload is sent as given). */
  claim?: number | bigint;
}

const enc = new TextEncoder();

/** One client frame as bytes, masked unless told otherwise. */
function frame(spec: FrameSpec): Uint8Array {
  const payload = typeof spec.payload === "string"
    ? enc.encode(spec.payload)
    : spec.payload ?? new Uint8Array(0);
  const claim = BigInt(spec.claim ?? payload.length);
  const form = spec.length ?? (claim < 126n ? 7 : claim < 65536n ? 16 : 64);
  const lengthBytes = form === 16 ? 2 : form === 64 ? 8 : 0;
  const masked = spec.masked ?? true;
  const head = new Uint8Array(2 + lengthBytes + (masked ? 4 : 0));
  head[0] = ((spec.fin ?? true) ? 0x80 : 0) | (spec.rsv ?? 0) | spec.opcode;
  const view = new DataView(head.buffer);
  if (form === 16) {
    head[1] = 126;
    view.setUint16(2, Number(claim));
  } else if (form === 64) {
    head[1] = 127;
    view.setBigUint64(2, claim);
  } else head[1] = Number(claim);
  const body = new Uint8Array(payload);
  if (masked) {
    head[1] |= 0x80;
    const mask = [0x37, 0xfa, 0x21, 0x3d];
    head.set(mask, head.length - 4);
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  }
  return joinBytes([head, body]);
}

const CAP = 1000;

/** Feeds `chunks` to a fresh parser; what it reported. */
function parse(chunks: Uint8Array[], cap = CAP): Event[] {
  const recorder = new Recorder();
  const parser = new FrameParser(recorder, cap);
  for (const chunk of chunks) parser.push(chunk);
  return recorder.events;
}

/** The one event a malformed stream must end in: a failure with `code`, after `before`. */
function failsWith(bytes: Uint8Array, code: number, before: Event[] = []): void {
  deepEqual(parse([bytes]), [...before, ["fail", code]]);
  // The same verdict whatever the chunking, and nothing reported after it.
  deepEqual(parse([...bytes].map((b) => new Uint8Array([b]))), [...before, ["fail", code]]);
}

Deno.test("an unmasked client frame is a protocol error, as soon as its second byte is in", () => {
  failsWith(frame({ opcode: 1, payload: "hi", masked: false }), CLOSE_PROTOCOL_ERROR);
  deepEqual(parse([frame({ opcode: 1, payload: "hi", masked: false }).subarray(0, 2)]), [
    ["fail", CLOSE_PROTOCOL_ERROR],
  ]);
});

Deno.test("any reserved bit set is a protocol error (no extension is negotiated)", () => {
  for (const rsv of [0x40, 0x20, 0x10, 0x70]) {
    failsWith(frame({ opcode: 1, payload: "hi", rsv }), CLOSE_PROTOCOL_ERROR);
  }
});

Deno.test("every unknown opcode, data or control, is a protocol error", () => {
  for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
    failsWith(frame({ opcode, payload: "x" }), CLOSE_PROTOCOL_ERROR);
  }
});

Deno.test("a fragmented control frame is a protocol error", () => {
  for (const opcode of [8, 9, 0xa]) {
    failsWith(frame({ opcode, fin: false }), CLOSE_PROTOCOL_ERROR);
  }
});

Deno.test("a control frame over 125 bytes is a protocol error, from its head alone", () => {
  for (const opcode of [8, 9, 0xa]) {
    const bytes = frame({ opcode, payload: new Uint8Array(126) });
    failsWith(bytes, CLOSE_PROTOCOL_ERROR);
    deepEqual(parse([bytes.subarray(0, 8)]), [["fail", CLOSE_PROTOCOL_ERROR]]);
  }
  // 125 is allowed.
  deepEqual(parse([frame({ opcode: 9, payload: new Uint8Array(125) })]), [
    ["ping", new Array(125).fill(0)],
  ]);
});

Deno.test("a continuation without a message, or a new data frame inside one, is a protocol error", () => {
  failsWith(frame({ opcode: 0, payload: "x" }), CLOSE_PROTOCOL_ERROR);
  for (const opcode of [1, 2]) {
    failsWith(
      joinBytes([frame({ opcode: 1, payload: "a", fin: false }), frame({ opcode, payload: "b" })]),
      CLOSE_PROTOCOL_ERROR,
    );
  }
  // A finished message leaves nothing to continue.
  failsWith(
    joinBytes([frame({ opcode: 1, payload: "a" }), frame({ opcode: 0, payload: "b" })]),
    CLOSE_PROTOCOL_ERROR,
    [["text", "a"]],
  );
});

Deno.test("a text message that is not UTF-8 fails with 1007, also when the bad sequence spans fragments", () => {
  failsWith(frame({ opcode: 1, payload: new Uint8Array([0x68, 0xff, 0x69]) }), CLOSE_INVALID_DATA);
  // An overlong encoding and a lone surrogate are not UTF-8 either.
  failsWith(frame({ opcode: 1, payload: new Uint8Array([0xc0, 0xaf]) }), CLOSE_INVALID_DATA);
  failsWith(frame({ opcode: 1, payload: new Uint8Array([0xed, 0xa0, 0x80]) }), CLOSE_INVALID_DATA);
  // "é" is C3 A9: cut after C3 and followed by an ASCII byte, the whole is invalid.
  failsWith(
    joinBytes([
      frame({ opcode: 1, payload: new Uint8Array([0x61, 0xc3]), fin: false }),
      frame({ opcode: 0, payload: new Uint8Array([0x41]) }),
    ]),
    CLOSE_INVALID_DATA,
  );
  // A message that ends inside a character.
  failsWith(
    joinBytes([
      frame({ opcode: 1, payload: new Uint8Array([0x61]), fin: false }),
      frame({ opcode: 0, payload: new Uint8Array([0xe2, 0x82]) }),
    ]),
    CLOSE_INVALID_DATA,
  );
  // Split correctly, the same bytes are one valid message.
  deepEqual(
    parse([
      frame({ opcode: 1, payload: new Uint8Array([0x61, 0xc3]), fin: false }),
      frame({ opcode: 0, payload: new Uint8Array([0xa9]) }),
    ]),
    [["text", "aé"]],
  );
});

Deno.test("a 64-bit length with its top bit set is a protocol error; a huge one is over the cap", () => {
  const top = frame({ opcode: 1, claim: 1n << 63n, length: 64 });
  failsWith(top, CLOSE_PROTOCOL_ERROR);
  deepEqual(parse([top.subarray(0, 3)]), []);
  const huge = frame({ opcode: 1, claim: 1n << 40n, length: 64 });
  failsWith(huge, CLOSE_TOO_BIG);
});

Deno.test("lengths in a longer form than needed are accepted", () => {
  deepEqual(
    parse([
      frame({ opcode: 1, payload: "sixteen", length: 16 }),
      frame({ opcode: 1, payload: "sixty-four", length: 64 }),
      frame({ opcode: 9, payload: "p", length: 16 }),
    ]),
    [["text", "sixteen"], ["text", "sixty-four"], ["ping", [0x70]]],
  );
});

Deno.test("a message over the cap fails with 1009 from its head, before any payload byte, text or binary", () => {
  for (const opcode of [1, 2]) {
    const over = frame({ opcode, payload: new Uint8Array(CAP + 1) });
    // The head alone (4 bytes + mask) decides.
    deepEqual(parse([over.subarray(0, 8)]), [["fail", CLOSE_TOO_BIG]]);
    failsWith(over, CLOSE_TOO_BIG);
    // At the cap exactly it is a message.
    const at = parse([frame({ opcode, payload: new Uint8Array(CAP).fill(0x61) })]);
    deepEqual(at, [opcode === 1 ? ["text", "a".repeat(CAP)] : ["binary", CAP]]);
  }
  // Fragments count together: the frame that takes the total past the cap fails at its head.
  const first = frame({ opcode: 1, payload: "a".repeat(CAP - 10), fin: false });
  const second = frame({ opcode: 0, payload: "b".repeat(11) });
  deepEqual(parse([first, second.subarray(0, 6)]), [["fail", CLOSE_TOO_BIG]]);
});

Deno.test("a close frame with a one-byte payload or a code not for the wire is a protocol error", () => {
  failsWith(frame({ opcode: 8, payload: new Uint8Array([0x03]) }), CLOSE_PROTOCOL_ERROR);
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]) {
    ok(!isValidCloseCode(code), `${code}`);
    failsWith(frame({ opcode: 8, payload: new Uint8Array([code >> 8, code & 0xff]) }), 1002);
  }
  // A reason that is not UTF-8 is 1007.
  failsWith(frame({ opcode: 8, payload: new Uint8Array([0x03, 0xe8, 0xff]) }), CLOSE_INVALID_DATA);
  for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999]) {
    ok(isValidCloseCode(code), `${code}`);
    const payload = joinBytes([new Uint8Array([code >> 8, code & 0xff]), enc.encode("bye")]);
    deepEqual(parse([frame({ opcode: 8, payload })]), [["close", code, "bye"]]);
  }
  deepEqual(parse([frame({ opcode: 8 })]), [["close", undefined, ""]]);
});

Deno.test("nothing after a close frame or a failure is parsed", () => {
  const after = frame({ opcode: 1, payload: "late" });
  deepEqual(parse([frame({ opcode: 8 }), after]), [["close", undefined, ""]]);
  deepEqual(parse([frame({ opcode: 7 }), after]), [["fail", CLOSE_PROTOCOL_ERROR]]);
});

/** A valid stream touching every path: each length form, fragments with control frames between, binary, empty, multibyte. */
const VALID: Uint8Array = joinBytes([
  frame({ opcode: 1, payload: "hello" }),
  frame({ opcode: 1, payload: "" }),
  frame({ opcode: 9, payload: "p1" }),
  frame({ opcode: 1, payload: "x".repeat(300) }),
  frame({ opcode: 1, payload: "frag", fin: false }),
  frame({ opcode: 0xa, payload: "" }),
  frame({ opcode: 0, payload: new Uint8Array([0x2d, 0xc3]), fin: false }),
  frame({ opcode: 9, payload: "" }),
  frame({ opcode: 0, payload: new Uint8Array([0xa9]) }),
  frame({ opcode: 2, payload: new Uint8Array(40), fin: false }),
  frame({ opcode: 0, payload: new Uint8Array(0), fin: false }),
  frame({ opcode: 0, payload: new Uint8Array(7) }),
  frame({ opcode: 1, payload: "sixty-four ✓ 😀", length: 64 }),
  frame({ opcode: 2, payload: new Uint8Array(0) }),
  frame({ opcode: 8, payload: joinBytes([new Uint8Array([0x03, 0xe8]), enc.encode("done")]) }),
]);
const VALID_EVENTS: Event[] = [
  ["text", "hello"],
  ["text", ""],
  ["ping", [0x70, 0x31]],
  ["text", "x".repeat(300)],
  ["pong"],
  ["ping", []],
  ["text", "frag-é"],
  ["binary", 47],
  ["text", "sixty-four ✓ 😀"],
  ["binary", 0],
  ["close", 1000, "done"],
];

Deno.test("a valid stream gives the same messages whole, byte by byte into a reused buffer, and at every 2-way split", () => {
  deepEqual(parse([VALID]), VALID_EVENTS);
  // One buffer, overwritten after each push: the parser keeps no reference to its input.
  const recorder = new Recorder();
  const parser = new FrameParser(recorder, CAP);
  const one = new Uint8Array(1);
  for (const b of VALID) {
    one[0] = b;
    parser.push(one);
    one[0] = 0;
  }
  deepEqual(recorder.events, VALID_EVENTS);
  for (let cut = 0; cut <= VALID.length; cut++) {
    deepEqual(parse([VALID.slice(0, cut), VALID.slice(cut)]), VALID_EVENTS, `split at ${cut}`);
  }
});

Deno.test("a text holding U+FFFD or a leading BOM is valid UTF-8 and reported as it is", () => {
  for (const text of ["\uFFFD", "a\uFFFDb", "\uFEFFhi", "\uFEFF\uFFFD€"]) {
    const bytes = frame({ opcode: 1, payload: text });
    deepEqual(parse([bytes]), [["text", text]]);
    deepEqual(parse([...bytes].map((b) => new Uint8Array([b]))), [["text", text]]);
  }
  // U+FFFD beside a bad sequence is still not UTF-8.
  failsWith(
    frame({ opcode: 1, payload: new Uint8Array([0xef, 0xbf, 0xbd, 0xff]) }),
    CLOSE_INVALID_DATA,
  );
});

Deno.test("parsers that read whole messages in one chunk leave another parser's partial message intact", () => {
  const small = "x".repeat(300);
  const large = "é".repeat(20_000);
  const a = new Recorder();
  const b = new Recorder();
  const pa = new FrameParser(a, 100_000);
  const pb = new FrameParser(b, 100_000);
  const partial = frame({ opcode: 1, payload: "half and half" });
  pa.push(partial.subarray(0, 9));
  // b's messages arrive whole, one of them larger than any before, while a's waits for its tail.
  pb.push(joinBytes([frame({ opcode: 1, payload: small }), frame({ opcode: 1, payload: large })]));
  pa.push(partial.subarray(9));
  pb.push(frame({ opcode: 1, payload: small }));
  deepEqual(a.events, [["text", "half and half"]]);
  deepEqual(b.events, [["text", small], ["text", large], ["text", small]]);
});

Deno.test("a message past 64 KiB is read whole through 64-bit lengths and odd chunk sizes", () => {
  const text = "ab€".repeat(30_000);
  const bytes = frame({ opcode: 1, payload: text });
  equal(bytes[1] & 0x7f, 127);
  for (const size of [1_000, 4_093, 65_536]) {
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.slice(at, at + size));
    deepEqual(parse(chunks, 1 << 20), [["text", text]]);
  }
});

/** Reads one unmasked server frame: fin, opcode and payload. */
function readServerFrame(bytes: Uint8Array): { fin: boolean; opcode: number; payload: Uint8Array } {
  ok((bytes[1] & 0x80) === 0, "server frames are not masked");
  let len = bytes[1] & 0x7f;
  let at = 2;
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  if (len === 126) {
    len = view.getUint16(2);
    at = 4;
  } else if (len === 127) {
    len = Number(view.getBigUint64(2));
    at = 10;
  }
  equal(bytes.length, at + len, "one frame, nothing after it");
  return { fin: (bytes[0] & 0x80) !== 0, opcode: bytes[0] & 0x0f, payload: bytes.subarray(at) };
}

Deno.test("text frames are encoded in the shortest length form, whole, for every size boundary", () => {
  for (const size of [0, 1, 125, 126, 65_535, 65_536, 70_000]) {
    for (const unit of ["a", "é", "€"]) {
      const text = unit.repeat(Math.ceil(size / enc.encode(unit).length));
      const f = readServerFrame(encodeTextFrame(text));
      deepEqual([f.fin, f.opcode], [true, 1]);
      equal(new TextDecoder().decode(f.payload), text);
      const n = f.payload.length;
      const form = encodeTextFrame(text)[1];
      equal(form, n < 126 ? n : n < 65536 ? 126 : 127, `${n} bytes`);
    }
  }
});

Deno.test("frames encoded one after another into a buffer are byte for byte the frames alone, at every size boundary", () => {
  const texts: string[] = [];
  for (const size of [0, 1, 41, 42, 125, 126, 127, 21_845, 21_846, 65_535, 65_536]) {
    for (const unit of ["a", "é", "€", "😀"]) {
      texts.push(unit.repeat(Math.ceil(size / enc.encode(unit).length)));
    }
  }
  // Lone surrogates are encoded as U+FFFD, as TextEncoder does.
  texts.push("a\ud800b", "\udc00");
  const alone = joinBytes(texts.map(encodeTextFrame));
  const buf = new Uint8Array(alone.length + 7);
  let at = 0;
  for (const text of texts) {
    const end = encodeTextFrameInto(buf, at, text);
    ok(end > at || text.length === 0, `${text.length} units did not fit`);
    at = end;
  }
  equal(at, alone.length);
  deepEqual(buf.subarray(0, at), alone);
});

Deno.test("a frame that does not fit what is left of the buffer is refused, and nothing before it is touched", () => {
  const buf = new Uint8Array(16);
  const end = encodeTextFrameInto(buf, 0, "hello");
  equal(end, 7);
  const before = buf.slice(0, end);
  equal(encodeTextFrameInto(buf, end, "x".repeat(8)), -1, "10 bytes into 9");
  equal(encodeTextFrameInto(buf, end, "ééééé"), -1, "a character cut at the end");
  equal(encodeTextFrameInto(buf, 16, ""), -1, "no room for a head");
  deepEqual(buf.slice(0, end), before);
  equal(encodeTextFrameInto(buf, end, "x".repeat(7)), 16, "9 bytes into 9");
  deepEqual(readServerFrame(buf.subarray(end)).payload, enc.encode("x".repeat(7)));
});

Deno.test("a close frame's reason is cut to 125 bytes at a character boundary", () => {
  const f = readServerFrame(encodeCloseFrame(1009, "€".repeat(100)));
  equal(f.opcode, 8);
  ok(f.payload.length <= 125);
  equal((f.payload[0] << 8) | f.payload[1], 1009);
  equal(new TextDecoder("utf-8", { fatal: true }).decode(f.payload.subarray(2)), "€".repeat(41));
  deepEqual([...encodeCloseFrame(undefined)], [0x88, 0]);
  deepEqual([...encodeControlFrame(0xa, new Uint8Array([1, 2]))], [0x8a, 2, 1, 2]);
});
