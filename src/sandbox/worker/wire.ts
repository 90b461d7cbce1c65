/**
 * The messages a sandboxed agent and its host exchange. One worker may run
 * several jobs (an agent's `reuse` and `concurrency`), so every message about
 * a job carries its slot `j`, a small number the runtime assigns; `beat`,
 * `described` and `exit` are about the whole worker. The host trusts nothing
 * the worker sends: {@linkcode WorkerMessageSchema} is strict, so a message
 * naming a job id, or any field this protocol does not define, is a protocol
 * violation, and the runtime routes a message only to the job whose slot it
 * names.
 *
 * @module
 */
import { z } from "zod";
import { EVENT_WINDOW } from "./limits.ts";

/** Host → worker. */
export type HostMessage =
  | { t: "describe" }
  | {
    t: "start";
    /** The job's slot in this worker. */
    j: number;
    jobId: string;
    traceId: string;
    /** The job's span in that trace: the parent of what the agent fetches (`traceparent`). */
    spanId?: string;
    input: unknown;
    lease: Record<string, string[]>;
    /** How often to beat (ms). */
    beatMs: number;
  }
  | { t: "abort"; j: number; reason: string }
  /**
   * The job's provisioned credentials, replacing what the worker held: sent
   * just before `start`, again on every rotation, and empty at the job's end. The
   * sandbox process reads them too (its egress proxy refuses to carry a
   * value anywhere but its endpoint).
   */
  | { t: "credentials"; j: number; credentials: WireCredential[] }
  /**
   * Credit given back: `n` events (or result chunks) and `b` of their bytes
   * (as `EVENT_WINDOW_BYTES` counts them) that the runtime has committed.
   */
  | { t: "credit"; j: number; n: number; b: number }
  | { t: "reply"; j: number; id: number; ok: true; value: unknown }
  | { t: "reply"; j: number; id: number; ok: false; code: string; message: string };

/** A provisioned credential on the worker wire (the protocol's `Credential`). */
export interface WireCredential {
  /** The credential's id, what events and the API name it by. */
  id: string;
  /** How the value is presented (`bearer`). */
  scheme: string;
  /** The secret itself; it never leaves the job's sandbox but for its endpoint. */
  value: string;
  /** The base URL the value may be sent to. */
  endpoint: string;
  /** The provisioner profile it was issued under. */
  profile?: string;
  /** Limits the issuer set on it. */
  constraints?: {
    /** When it stops working (RFC 3339). */
    expires_at?: string;
    /** Models it may be used with. */
    allowed_models?: string[];
    /** Most it may spend. */
    max_spend?: { currency: string; amount: number };
  };
}

/** Omits a key from each member of a union. */
type OmitEach<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A message about one job, before its channel names the job's slot. */
export type JobMessage = OmitEach<Exclude<HostMessage, { t: "describe" }>, "j">;

/** Operations a worker may ask the runtime for; each is checked against the lease. */
export const CALL_OPS = ["authorize", "tool", "delegate", "upstream_budget", "input"] as const;

/** One of {@linkcode CALL_OPS}. */
export type CallOp = typeof CALL_OPS[number];

/** A job's slot in its worker. */
const Slot = z.number().int().nonnegative();

/** An event's kind, as the worker names it (the runtime checks it further). */
const EventKind = z.string().min(1).max(200);

/** An event's body. */
const EventBody = z.record(z.string(), z.unknown());

/** Worker → host, as the host accepts it. */
export const WorkerMessageSchema = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("described"),
    name: z.string(),
    version: z.string(),
    description: z.string().optional(),
    reuse: z.unknown().optional(),
    concurrency: z.unknown().optional(),
  }).strict(),
  z.object({
    t: z.literal("event"),
    j: Slot,
    kind: EventKind,
    body: EventBody,
  })
    .strict(),
  /** Events of one job emitted in one turn, in order: `[kind, body]` each. */
  z.object({
    t: z.literal("events"),
    j: Slot,
    items: z.array(z.tuple([EventKind, EventBody])).min(1).max(EVENT_WINDOW),
  }).strict(),
  z.object({ t: z.literal("result"), j: Slot, value: z.unknown() }).strict(),
  z.object({
    t: z.literal("call"),
    j: Slot,
    id: z.number().int().nonnegative(),
    op: z.enum(CALL_OPS),
    args: z.record(z.string(), z.unknown()),
  }).strict(),
  z.object({ t: z.literal("beat") }).strict(),
  /** The agent module is loaded: the worker can start a job at once. */
  z.object({ t: z.literal("ready") }).strict(),
  z.object({
    t: z.literal("chunk"),
    j: Slot,
    data: z.string(),
    encoding: z.enum(["utf8", "base64"]),
  })
    .strict(),
  z.object({ t: z.literal("chunk_end"), j: Slot }).strict(),
  z.object({
    t: z.literal("error"),
    j: Slot,
    name: z.string().max(200),
    message: z.string(),
    code: z.string().max(64).optional(),
    /** The limit the agent's outcome hit, when the worker refused it itself. */
    cap: z.literal("result").optional(),
  }).strict(),
  /** The agent is ending its own worker (`self.close()`, `Deno.exit()`). */
  z.object({ t: z.literal("exit"), via: z.enum(["close", "exit"]) }).strict(),
]);

/** A message from a worker. */
export type WorkerMessage = z.infer<typeof WorkerMessageSchema>;
