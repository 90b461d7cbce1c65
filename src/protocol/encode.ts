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
