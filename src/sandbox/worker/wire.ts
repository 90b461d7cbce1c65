/**
 * The messages a sandboxed agent and its host exchange. The host trusts
 * nothing the worker sends: {@linkcode WorkerMessageSchema} is strict, so a
 * message naming a job id, or any field this protocol does not define, is a
 * protocol violation.
 *
 * @module
 */
import { z } from "zod";

/** Host → worker. */
export type HostMessage =
  | { t: "describe" }
  | {
    t: "start";
    jobId: string;
    traceId: string;
    input: unknown;
    lease: Record<string, string[]>;
    /** How often to beat (ms). */
    beatMs: number;
  }
  | { t: "abort"; reason: string }
  | { t: "credit"; n: number }
  | { t: "reply"; id: number; ok: true; value: unknown }
  | { t: "reply"; id: number; ok: false; code: string; message: string };

/** Operations a worker may ask the runtime for; each is checked against the lease. */
export const CALL_OPS = ["authorize", "tool", "delegate"] as const;

/** One of {@linkcode CALL_OPS}. */
export type CallOp = typeof CALL_OPS[number];

/** Worker → host, as the host accepts it. */
export const WorkerMessageSchema = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("described"),
    name: z.string(),
    version: z.string(),
    description: z.string().optional(),
  }).strict(),
  z.object({
    t: z.literal("event"),
    kind: z.string().min(1).max(200),
    body: z.record(z.string(), z.unknown()),
  })
    .strict(),
  z.object({ t: z.literal("result"), value: z.unknown() }).strict(),
  z.object({
    t: z.literal("call"),
    id: z.number().int().nonnegative(),
    op: z.enum(CALL_OPS),
    args: z.record(z.string(), z.unknown()),
  }).strict(),
  z.object({ t: z.literal("beat") }).strict(),
  z.object({ t: z.literal("chunk"), data: z.string(), encoding: z.enum(["utf8", "base64"]) })
    .strict(),
  z.object({ t: z.literal("chunk_end") }).strict(),
  z.object({
    t: z.literal("error"),
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
