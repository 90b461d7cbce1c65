/**
 * The one envelope encoder: every frame the runtime or the client sends is
 * built here, so the protocol version and the field order are written once.
 *
 * @module
 */
import { ARCP_VERSION } from "./envelope.ts";
import { newUlid } from "./ids.ts";
import type { MessageType, Payloads } from "./messages.ts";

/** An envelope to send, less `arcp` (always {@linkcode ARCP_VERSION}). */
export interface OutboundEnvelope<T extends MessageType> {
  /** Envelope id; a fresh ULID when left out. */
  id?: string;
  /** The message type. */
  type: T;
  /** The session; left out only before a session exists (the hello). */
  session_id?: string;
  /** The job the envelope is about. */
  job_id?: string;
  /** The W3C trace id. */
  trace_id?: string;
  /** Position in the session's event sequence, for seq-bearing types. */
  event_seq?: number;
  /** The payload, typed by the schema of its message type. */
  payload: Payloads[T];
}

/**
 * Serializes an outbound envelope. Fields left undefined are left out.
 *
 * @param env the envelope's fields
 * @returns the frame's text
 * @example
 * ```ts
 * import { encodeEnvelope } from "./encode.ts";
 * const text = encodeEnvelope({ type: "session.closed", session_id: "sess_1", payload: {} });
 * console.log(JSON.parse(text).arcp); // "1.1"
 * ```
 */
export function encodeEnvelope<T extends MessageType>(env: OutboundEnvelope<T>): string {
  return JSON.stringify({
    arcp: ARCP_VERSION,
    id: env.id ?? newUlid(),
    type: env.type,
    session_id: env.session_id,
    job_id: env.job_id,
    trace_id: env.trace_id,
    event_seq: env.event_seq,
    payload: env.payload,
  });
}

/** How every frame begins, up to the id (a ULID, quoted as it is) after its opening quote. */
const HEAD = `{"arcp":${JSON.stringify(ARCP_VERSION)},"id":"`;

/** The head of the last envelope encoded, reused by the next one of the same type, job and trace. */
let last: {
  type: string;
  job_id: string | undefined;
  trace_id: string | undefined;
  typeText: string;
  middle: string;
} = { type: "", job_id: undefined, trace_id: undefined, typeText: "", middle: "" };

/** The fields of an envelope that every session it goes to gets alike. */
export interface SharedEnvelope<T extends MessageType> {
  /** The message type. */
  type: T;
  /** The job the envelope is about. */
  job_id?: string;
  /** The W3C trace id. */
  trace_id?: string;
  /** The payload. */
  payload: Payloads[T];
}

/**
 * An envelope serialized once for every session it goes to: the payload and
 * the shared fields are encoded here, and each session's frame only splices
 * in its own `id`, `session_id` and `event_seq`. The frame is byte for byte
 * what {@linkcode encodeEnvelope} makes of the same fields.
 *
 * @example
 * ```ts
 * import { EnvelopeEncoding } from "./encode.ts";
 * const enc = new EnvelopeEncoding({
 *   type: "job.event",
 *   job_id: "job_1",
 *   payload: { kind: "log", ts: "2026-01-01T00:00:00Z", body: { level: "info", message: "hi" } },
 * });
 * console.log(JSON.parse(enc.frame("01J0", "sess_1", 7)).event_seq); // 7
 * ```
 */
export class EnvelopeEncoding<T extends MessageType> {
  /** The shared fields, as given. */
  readonly shared: SharedEnvelope<T>;
  #type: string;
  #middle: string;
  #tail: string;

  /**
   * Encodes the shared fields.
   *
   * @param shared type, job, trace and payload
   * @param payloadJson `JSON.stringify(shared.payload)`, when the caller has it already
   */
  constructor(shared: SharedEnvelope<T>, payloadJson?: string) {
    this.shared = shared;
    // A job's envelopes come in runs of one type: their shared head is spelled once a run.
    if (
      shared.type !== last.type || shared.job_id !== last.job_id ||
      shared.trace_id !== last.trace_id
    ) {
      const job = shared.job_id === undefined ? "" : `,"job_id":${JSON.stringify(shared.job_id)}`;
      const trace = shared.trace_id === undefined
        ? ""
        : `,"trace_id":${JSON.stringify(shared.trace_id)}`;
      last = {
        type: shared.type,
        job_id: shared.job_id,
        trace_id: shared.trace_id,
        typeText: `,"type":${JSON.stringify(shared.type)},"session_id":`,
        middle: `${job}${trace},"event_seq":`,
      };
    }
    this.#type = last.typeText;
    this.#middle = last.middle;
    this.#tail = `,"payload":${payloadJson ?? JSON.stringify(shared.payload)}}`;
  }

  /**
   * The frame for one session.
   *
   * @param id the envelope id: plain text that JSON spells without escapes
   *   (a ULID, as `newUlid` makes them), so it is quoted as it is
   * @param sessionId the receiving session
   * @param eventSeq its seq in that session
   * @returns the frame's text
   */
  frame(id: string, sessionId: string, eventSeq: number): string {
    // A session's envelopes come in runs too: its id is quoted once a run.
    if (sessionId !== quotedSession.id) {
      quotedSession = { id: sessionId, json: JSON.stringify(sessionId) };
    }
    // What lies between the id and the seq is alike for the frames of a run
    // to one session: joined once a run, each frame is four concatenations
    // rather than eight (each a string the young generation holds until the
    // frame is committed).
    if (
      this.#type !== between.type || this.#middle !== between.middle ||
      quotedSession !== between.session
    ) {
      between = {
        type: this.#type,
        middle: this.#middle,
        session: quotedSession,
        text: `"${this.#type}${quotedSession.json}${this.#middle}`,
      };
    }
    return `${HEAD}${id}${between.text}${eventSeq}${this.#tail}`;
  }
}

/** The session id of the last frame, and its JSON. */
let quotedSession = { id: "", json: '""' };

/** The text of the last frame from the id's closing quote to its seq, and what it was made of. */
let between = { type: "", middle: "", session: quotedSession, text: "" };
