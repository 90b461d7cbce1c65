/**
 * The ARCP envelope (ARCP.md §2) and its decoder.
 *
 * @module
 */
import { z } from "zod";
import { ArcpError } from "./errors.ts";

/** The protocol version this runtime speaks. */
export const ARCP_VERSION = "1.1";

/** 32 lowercase hex characters: a W3C trace id. */
export const TRACE_ID: RegExp = /^[0-9a-f]{32}$/;

/** Longest id, type or session/job id accepted on an inbound envelope. */
const MAX_ID = 256;

/** Schema of the envelope every frame carries. Unknown top-level fields are ignored. */
export const EnvelopeSchema: z.ZodObject<{
  arcp: z.ZodString;
  id: z.ZodString;
  type: z.ZodString;
  session_id: z.ZodOptional<z.ZodString>;
  job_id: z.ZodOptional<z.ZodString>;
  trace_id: z.ZodOptional<z.ZodString>;
  event_seq: z.ZodOptional<z.ZodNumber>;
  extensions: z.ZodOptional<z.ZodRecord<z.ZodString, z.ZodUnknown>>;
  payload: z.ZodRecord<z.ZodString, z.ZodUnknown>;
}> = z.object({
  arcp: z.string(),
  id: z.string().min(1).max(MAX_ID),
  type: z.string().min(1).max(MAX_ID),
  session_id: z.string().min(1).max(MAX_ID).optional(),
  job_id: z.string().min(1).max(MAX_ID).optional(),
  trace_id: z.string().regex(TRACE_ID, "must be 32 lowercase hex characters").optional(),
  event_seq: z.number().int().nonnegative().optional(),
  extensions: z.record(z.string(), z.unknown()).optional(),
  payload: z.record(z.string(), z.unknown()),
});

/** An ARCP envelope. */
export type Envelope = z.infer<typeof EnvelopeSchema>;

/**
 * Formats the first zod issue as `field.path: problem`, so every decoding
 * error names the offending field.
 *
 * @param error the zod error
 * @param prefix the path the schema was applied at, e.g. `payload`
 * @returns a one-line message
 */
export function describeZodError(error: z.ZodError, prefix = ""): string {
  const issue = error.issues[0];
  if (!issue) return `${prefix || "message"}: invalid`;
  const path = [prefix, ...issue.path.map(String)].filter((p) => p !== "").join(".");
  return `${path || "message"}: ${issue.message}`;
}

/**
 * Parses and checks one inbound frame's envelope.
 *
 * @param text the frame's text
 * @returns the envelope
 * @throws {ArcpError} `INVALID_REQUEST` naming what is wrong
 */
export function decodeEnvelope(text: string): Envelope {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ArcpError("INVALID_REQUEST", "frame is not valid JSON");
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ArcpError("INVALID_REQUEST", "frame is not a JSON object");
  }
  const arcp = (raw as Record<string, unknown>).arcp;
  if (arcp !== ARCP_VERSION) {
    throw new ArcpError(
      "INVALID_REQUEST",
      `arcp: expected "${ARCP_VERSION}", got ${JSON.stringify(arcp) ?? "nothing"}`,
    );
  }
  const fast = plainEnvelope(raw as Record<string, unknown>);
  if (fast) return fast;
  const parsed = EnvelopeSchema.safeParse(raw);
  if (!parsed.success) throw new ArcpError("INVALID_REQUEST", describeZodError(parsed.error));
  return parsed.data;
}

/** Whether a value is an id the schema takes: a string of 1 to `MAX_ID` characters. */
function isId(v: unknown): v is string {
  return typeof v === "string" && v.length >= 1 && v.length <= MAX_ID;
}

/** Whether a value is an object `z.record` takes and copies as it is. */
function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !Object.hasOwn(v, "__proto__");
}

/**
 * What {@linkcode EnvelopeSchema} makes of an envelope every field of which
 * is plainly valid, built without zod (a frame's decode was a measurable
 * part of a short job's cost); undefined for anything else, which zod then
 * checks and, when wrong, describes. Same fields, same order, unknown ones
 * dropped, `payload` and `extensions` copied.
 */
function plainEnvelope(raw: Record<string, unknown>): Envelope | undefined {
  const { arcp, id, type, session_id, job_id, trace_id, event_seq, extensions, payload } = raw;
  if (typeof arcp !== "string" || !isId(id) || !isId(type) || !isPlainRecord(payload)) {
    return undefined;
  }
  if (session_id !== undefined && !isId(session_id)) return undefined;
  if (job_id !== undefined && !isId(job_id)) return undefined;
  if (trace_id !== undefined && !(typeof trace_id === "string" && TRACE_ID.test(trace_id))) {
    return undefined;
  }
  if (
    event_seq !== undefined &&
    !(typeof event_seq === "number" && Number.isSafeInteger(event_seq) && event_seq >= 0)
  ) return undefined;
  if (extensions !== undefined && !isPlainRecord(extensions)) return undefined;
  // Built in the schema's order, as zod builds it.
  const env: Partial<Envelope> = { arcp, id, type };
  if (session_id !== undefined) env.session_id = session_id;
  if (job_id !== undefined) env.job_id = job_id;
  if (trace_id !== undefined) env.trace_id = trace_id;
  if (event_seq !== undefined) env.event_seq = event_seq as number;
  if (extensions !== undefined) env.extensions = { ...extensions };
  env.payload = { ...payload };
  return env as Envelope;
}

/**
 * Validates a payload against its schema.
 *
 * @param schema the payload schema
 * @param payload the envelope's payload
 * @returns the typed payload
 * @throws {ArcpError} `INVALID_REQUEST` naming the offending field
 */
export function decodePayload<T extends z.ZodType>(schema: T, payload: unknown): z.infer<T> {
  const parsed = schema.safeParse(payload);
  if (!parsed.success) {
    throw new ArcpError("INVALID_REQUEST", describeZodError(parsed.error, "payload"));
  }
  return parsed.data;
}
