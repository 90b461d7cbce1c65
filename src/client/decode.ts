/**
 * Validation of what the runtime sends, with the protocol's own schemas.
 * Each decoder returns the client's public payload type, so the schemas and
 * the published types cannot drift apart without a type error here. A
 * payload that fails its schema decodes to undefined and is dropped, as the
 * reference client does.
 *
 * @module
 */
import type { z } from "zod";
import { decodeEnvelope, type Envelope } from "../protocol/envelope.ts";
import { type ErrorPayload, ErrorPayloadSchema } from "../protocol/errors.ts";
import { EVENT_BODIES, JobEventPayloadSchema } from "../protocol/events.ts";
import {
  AcceptedSchema,
  CancelSchema,
  JobErrorSchema,
  JobsSchema,
  PingSchema,
  PongSchema,
  ResultSchema,
  SubscribedSchema,
  WelcomeSchema,
} from "../protocol/messages.ts";
import type { FailedStatus } from "./errors.ts";
import type {
  AcceptedPayload,
  AgentInfo,
  JobEventEnvelope,
  JobResultPayload,
  JobsPayload,
  PongPayload,
  ResultChunkBody,
  RuntimeInfo,
  SubscribedPayload,
} from "./payloads.ts";

/** The parts of a welcome the client keeps. */
export interface DecodedWelcome {
  /** Runtime name and version. */
  runtime: RuntimeInfo;
  /** The fresh resume token. */
  resume_token: string;
  /** How long the session stays resumable after a drop (s). */
  resume_window_sec: number;
  /** Heartbeat interval (s), when negotiated. */
  heartbeat_interval_sec?: number;
  /** Negotiated features and the agent inventory. */
  capabilities: { features: string[]; agents: AgentInfo[] };
}

/** A `job.error` payload. */
export interface DecodedJobError extends ErrorPayload {
  /** How the job ended. */
  final_status: FailedStatus;
}

function parse<T extends z.ZodType>(schema: T, payload: unknown): z.infer<T> | undefined {
  const parsed = schema.safeParse(payload);
  return parsed.success ? parsed.data : undefined;
}

/**
 * Decodes one frame's envelope.
 *
 * @param text the frame
 * @returns the envelope, or undefined for anything that is not one
 */
export function envelope(text: string): Envelope | undefined {
  try {
    return decodeEnvelope(text);
  } catch {
    return undefined;
  }
}

/**
 * Decodes a `session.welcome` payload.
 *
 * @param payload the payload
 * @returns the welcome, or undefined
 */
export function welcome(payload: unknown): DecodedWelcome | undefined {
  return parse(WelcomeSchema, payload);
}

/**
 * Decodes an error payload (`session.error`).
 *
 * @param payload the payload
 * @returns the error, or undefined
 */
export function errorPayload(payload: unknown): ErrorPayload | undefined {
  return parse(ErrorPayloadSchema, payload);
}

/**
 * Decodes a `job.accepted` payload.
 *
 * @param payload the payload
 * @returns the payload, or undefined
 */
export function accepted(payload: unknown): AcceptedPayload | undefined {
  return parse(AcceptedSchema, payload);
}

/**
 * Decodes a `job.result` payload.
 *
 * @param payload the payload
 * @returns the payload, or undefined
 */
export function result(payload: unknown): JobResultPayload | undefined {
  return parse(ResultSchema, payload);
}

/**
 * Decodes the body of a `result_chunk` event.
 *
 * @param body the event's body
 * @returns the body, or undefined
 */
export function resultChunk(body: unknown): ResultChunkBody | undefined {
  return parse(EVENT_BODIES.result_chunk, body);
}

/**
 * Decodes a `job.error` payload.
 *
 * @param payload the payload
 * @returns the payload, or undefined
 */
export function jobError(payload: unknown): DecodedJobError | undefined {
  return parse(JobErrorSchema, payload);
}

/**
 * Decodes a `job.cancelled` payload.
 *
 * @param payload the payload
 * @returns the payload, or undefined
 */
export function cancelled(payload: unknown): { reason?: string } | undefined {
  return parse(CancelSchema, payload);
}

/**
 * Decodes a `session.jobs` payload.
 *
 * @param payload the payload
 * @returns the payload, or undefined
 */
export function jobs(payload: unknown): JobsPayload | undefined {
  return parse(JobsSchema, payload);
}

/**
 * Decodes a `job.subscribed` payload.
 *
 * @param payload the payload
 * @returns the payload, or undefined
 */
export function subscribed(payload: unknown): SubscribedPayload | undefined {
  return parse(SubscribedSchema, payload);
}

/**
 * Decodes a `session.ping` payload.
 *
 * @param payload the payload
 * @returns the payload, or undefined
 */
export function ping(payload: unknown): { nonce: string; sent_at: string } | undefined {
  return parse(PingSchema, payload);
}

/**
 * Decodes a `session.pong` payload.
 *
 * @param payload the payload
 * @returns the payload, or undefined
 */
export function pong(payload: unknown): PongPayload | undefined {
  return parse(PongSchema, payload);
}

/**
 * Narrows a `job.event` envelope to its public shape.
 *
 * @param env the envelope (its `event_seq` already checked)
 * @returns the event envelope, or undefined when it is malformed
 */
export function jobEvent(env: Envelope): JobEventEnvelope | undefined {
  const payload = parse(JobEventPayloadSchema, env.payload);
  if (!payload || env.job_id === undefined || env.event_seq === undefined) return undefined;
  const out: JobEventEnvelope = {
    arcp: env.arcp,
    id: env.id,
    type: "job.event",
    session_id: env.session_id!,
    job_id: env.job_id,
    event_seq: env.event_seq,
    payload,
  };
  if (env.trace_id !== undefined) out.trace_id = env.trace_id;
  if (env.extensions !== undefined) out.extensions = env.extensions;
  return out;
}
