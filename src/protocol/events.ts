/**
 * Job event kinds and their bodies (ARCP.md §5).
 *
 * @module
 */
import { z } from "zod";
import { ErrorPayloadSchema } from "./errors.ts";

/** The levels of a `log` event. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "critical"] as const;

/** Body schemas of the reserved event kinds, keyed by kind. */
export const EVENT_BODIES = {
  log: z.object({
    level: z.enum(LOG_LEVELS),
    message: z.string(),
    attributes: z.record(z.string(), z.unknown()).optional(),
  }),
  thought: z.object({ text: z.string() }),
  tool_call: z.object({
    tool: z.string().min(1),
    args: z.unknown().optional(),
    call_id: z.string().min(1),
  }),
  tool_result: z.union([
    z.object({ call_id: z.string().min(1), error: ErrorPayloadSchema }),
    z.object({ call_id: z.string().min(1), result: z.unknown().optional() }),
  ]),
  status: z.object({ phase: z.string().min(1), message: z.string().optional() }).passthrough(),
  metric: z.object({
    name: z.string().min(1),
    value: z.number().finite(),
    unit: z.string().optional(),
    dims: z.record(z.string(), z.unknown()).optional(),
  }),
  artifact_ref: z.object({
    uri: z.string().min(1),
    content_type: z.string().min(1),
    byte_size: z.number().int().nonnegative().optional(),
    sha256: z.string().optional(),
  }),
  delegate: z.object({
    delegate_id: z.string().min(1),
    agent: z.string().min(1),
    input: z.unknown(),
    lease_request: z.record(z.string(), z.array(z.string())).optional(),
    lease_constraints: z.object({ expires_at: z.string().optional() }).optional(),
  }),
  progress: z.object({
    current: z.number().finite().nonnegative(),
    total: z.number().finite().nonnegative().optional(),
    units: z.string().optional(),
    message: z.string().optional(),
  }).refine((b) => b.total === undefined || b.current <= b.total, {
    message: "current must not exceed total",
    path: ["current"],
  }),
  result_chunk: z.object({
    result_id: z.string().min(1),
    chunk_seq: z.number().int().nonnegative(),
    data: z.string(),
    encoding: z.enum(["utf8", "base64"]),
    more: z.boolean(),
  }),
};

/** A reserved event kind. */
export type ReservedKind = keyof typeof EVENT_BODIES;

/** The body of a reserved event kind, as its schema decodes it. */
export type EventBody<K extends ReservedKind> = z.infer<typeof EVENT_BODIES[K]>;

/** Vendor event kinds: `x-vendor.<name>`. */
export const VENDOR_KIND: RegExp = /^x-vendor\.[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The `job.event` payload. */
export const JobEventPayloadSchema = z.object({
  kind: z.string().min(1),
  ts: z.string(),
  body: z.record(z.string(), z.unknown()),
});

/** A `job.event` payload. */
export type JobEventPayload = z.infer<typeof JobEventPayloadSchema>;

/**
 * Whether a kind is reserved by ARCP.
 *
 * @param kind the event kind
 * @returns true for the kinds in {@linkcode EVENT_BODIES}
 */
export function isReservedKind(kind: string): kind is ReservedKind {
  return Object.hasOwn(EVENT_BODIES, kind);
}
