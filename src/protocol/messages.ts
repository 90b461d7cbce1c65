/**
 * Payload schemas of every ARCP message (ARCP.md §3–§4), inbound and
 * outbound. The runtime decodes with them and the client types what it reads
 * with them, so each wire shape is written once, here.
 *
 * @module
 */
import { z } from "zod";
import { type ErrorPayload, ErrorPayloadSchema } from "./errors.ts";
import type { JobEventPayload } from "./events.ts";
import type { Input, InputAccepted, Refused, Transcript, TranscriptPage } from "./job_input.ts";
import { LeaseSchema } from "./lease.ts";

/** Longest idempotency key accepted (it is hashed before use in a key anyway). */
export const MAX_IDEMPOTENCY_KEY = 256;

/**
 * How a job that did not succeed ended: the `final_status` of a `job.error`.
 * Written out, not derived from {@linkcode FAILED_STATUSES}, because the
 * client's public API exports it and may not name a private constant.
 */
export type FailedStatus = "error" | "cancelled" | "timed_out";

/** A job state; the last four are terminal. */
export type JobStatus = "pending" | "running" | "success" | FailedStatus;

/** The terminal states other than success. */
export const FAILED_STATUSES = [
  "error",
  "cancelled",
  "timed_out",
] as const satisfies readonly FailedStatus[];

/** Job states; the last four are terminal. */
export const JOB_STATUSES = [
  "pending",
  "running",
  "success",
  ...FAILED_STATUSES,
] as const satisfies readonly JobStatus[];

/** Schema of a job state. */
export const JobStatusSchema = z.enum(JOB_STATUSES);

/** Terminal job states. */
export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set(["success", ...FAILED_STATUSES]);

const short = z.string().max(1024);

// ---- session.* ----------------------------------------------------------

/** `session.hello` payload. */
export const HelloSchema = z.object({
  client: z.object({
    name: short,
    version: short,
    fingerprint: short.optional(),
    principal: short.optional(),
  }),
  auth: z.object({ scheme: z.literal("bearer"), token: z.string().min(1).max(4096) }),
  capabilities: z.object({
    encodings: z.array(short).max(64).optional(),
    features: z.array(short).max(64).optional(),
  }).optional(),
  resume: z.object({
    session_id: z.string().min(1).max(256),
    resume_token: z.string().min(1).max(4096),
    last_event_seq: z.number().int().nonnegative(),
  }).optional(),
});

/** A `session.hello` payload. */
export type Hello = z.infer<typeof HelloSchema>;

/**
 * An agent name with its versions, as the welcome advertises it. Written
 * out rather than inferred because both public APIs export it, and a
 * published type may not name zod's; the schema below is pinned to it.
 */
export type AgentInventoryEntry = {
  /** Agent name. */
  name: string;
  /** Every version, oldest first (only the default unless `agent_versions` was negotiated). */
  versions: string[];
  /** What a bare name resolves to. */
  default: string;
};

/**
 * Schema of {@linkcode AgentInventoryEntry}, declared as producing it so the two are
 * checked against each other.
 */
export const AgentInventoryEntrySchema: z.ZodType<AgentInventoryEntry> = z.object({
  name: z.string(),
  versions: z.array(z.string()),
  default: z.string(),
});

/** `session.welcome` payload. */
export const WelcomeSchema = z.object({
  runtime: z.object({ name: z.string(), version: z.string() }),
  resume_token: z.string(),
  resume_window_sec: z.number().int().positive(),
  heartbeat_interval_sec: z.number().int().positive().optional(),
  capabilities: z.object({
    encodings: z.array(z.string()),
    features: z.array(z.string()),
    agents: z.array(AgentInventoryEntrySchema),
  }),
});

/** A `session.welcome` payload. */
export type Welcome = z.infer<typeof WelcomeSchema>;

/** `session.bye` payload. */
export const ByeSchema = z.object({ reason: short.optional() });

/** A `session.bye` payload. */
export type Bye = z.infer<typeof ByeSchema>;

/** `session.close` / `session.closed` payload. */
export const EmptySchema = z.object({});

/** The empty payload of `session.close` / `session.closed`. */
export type Empty = z.infer<typeof EmptySchema>;

/** `session.ping` payload. */
export const PingSchema = z.object({ nonce: short, sent_at: short });

/** A `session.ping` payload. */
export type Ping = z.infer<typeof PingSchema>;

/** `session.pong` payload. */
export const PongSchema = z.object({ ping_nonce: short, received_at: short });

/** A `session.pong` payload. */
export type Pong = z.infer<typeof PongSchema>;

/** `session.ack` payload. */
export const AckSchema = z.object({ last_processed_seq: z.number().int().nonnegative() });

/** A `session.ack` payload. */
export type Ack = z.infer<typeof AckSchema>;

/** `session.list_jobs` payload. */
export const ListJobsSchema = z.object({
  filter: z.object({
    status: z.array(JobStatusSchema).max(6).optional(),
    agent: z.string().max(300).optional(),
    created_after: short.optional(),
    created_before: short.optional(),
  }).optional(),
  limit: z.number().int().min(1).max(1000).optional(),
  cursor: z.string().max(1024).nullable().optional(),
});

/** A `session.list_jobs` payload. */
export type ListJobs = z.infer<typeof ListJobsSchema>;

/** One entry of `session.jobs`. */
export const JobEntrySchema = z.object({
  job_id: z.string(),
  agent: z.string(),
  status: JobStatusSchema,
  lease: LeaseSchema,
  parent_job_id: z.string().nullable().optional(),
  created_at: z.string(),
  trace_id: z.string().optional(),
  last_event_seq: z.number().int().nonnegative(),
});

/** One job as `session.jobs` lists it. */
export type JobEntry = z.infer<typeof JobEntrySchema>;

/** `session.jobs` payload. */
export const JobsSchema = z.object({
  request_id: z.string(),
  jobs: z.array(JobEntrySchema),
  next_cursor: z.string().nullable(),
});

/** A `session.jobs` payload. */
export type Jobs = z.infer<typeof JobsSchema>;

// ---- job.* --------------------------------------------------------------

/** `lease_constraints`. */
export const LeaseConstraintsSchema = z.object({ expires_at: z.string().max(64).optional() });

/** Lease constraints. */
export type LeaseConstraints = z.infer<typeof LeaseConstraintsSchema>;

/** `job.submit` payload. */
export const SubmitSchema = z.object({
  agent: z.string().min(1).max(300),
  input: z.unknown(),
  lease_request: LeaseSchema.optional(),
  lease_constraints: LeaseConstraintsSchema.optional(),
  idempotency_key: z.string().min(1).max(MAX_IDEMPOTENCY_KEY).optional(),
  max_runtime_sec: z.number().int().positive().max(10 * 365 * 24 * 3600).optional(),
});

/** A `job.submit` payload. */
export type Submit = z.infer<typeof SubmitSchema>;

/**
 * A credential handed to a job's submitter (§5.8, `job.accepted.credentials[]`);
 * its `value` is a secret. Written out rather than inferred because both
 * public APIs export it; the schema below is pinned to it.
 */
export type Credential = {
  /** Stable id within the job. */
  id: string;
  /** Auth scheme; `bearer` from this runtime's provisioners. */
  scheme: string;
  /** The secret. */
  value: string;
  /** Where it is valid. */
  endpoint: string;
  /** API dialect hint. */
  profile?: string;
  /** What the upstream enforces. */
  constraints?: {
    /** RFC 3339 instant after which it stops working. */
    expires_at?: string;
    /** Models it may be used with. */
    allowed_models?: string[];
    /** Spend cap. */
    max_spend?: { currency: string; amount: number };
  };
};

/**
 * Schema of {@linkcode Credential}, declared as producing it so the two are
 * checked against each other.
 */
export const CredentialSchema: z.ZodType<Credential> = z.object({
  id: z.string(),
  scheme: z.string(),
  value: z.string(),
  endpoint: z.string(),
  profile: z.string().optional(),
  constraints: z.object({
    expires_at: z.string().optional(),
    allowed_models: z.array(z.string()).optional(),
    max_spend: z.object({ currency: z.string(), amount: z.number() }).optional(),
  }).optional(),
});

/** `job.accepted` payload. */
export const AcceptedSchema = z.object({
  job_id: z.string(),
  agent: z.string(),
  lease: LeaseSchema,
  lease_constraints: LeaseConstraintsSchema.optional(),
  budget: z.record(z.string(), z.number()).optional(),
  credentials: z.array(CredentialSchema).optional(),
  accepted_at: z.string(),
  parent_job_id: z.string().optional(),
  delegate_id: z.string().optional(),
  trace_id: z.string(),
});

/** A `job.accepted` payload. */
export type Accepted = z.infer<typeof AcceptedSchema>;

/** `job.result` payload. */
export const ResultSchema = z.object({
  final_status: z.literal("success"),
  result: z.unknown().optional(),
  result_id: z.string().optional(),
  result_size: z.number().int().nonnegative().optional(),
  summary: z.string().optional(),
});

/** A `job.result` payload. */
export type Result = z.infer<typeof ResultSchema>;

/** `job.error` payload. */
export const JobErrorSchema = ErrorPayloadSchema.extend({
  final_status: z.enum(FAILED_STATUSES),
});

/** A `job.error` payload. */
export type JobError = z.infer<typeof JobErrorSchema>;

/** `job.cancel` / `job.cancelled` payload. */
export const CancelSchema = z.object({ reason: short.optional() });

/** A `job.cancel` / `job.cancelled` payload. */
export type Cancel = z.infer<typeof CancelSchema>;

/** `job.subscribe` payload. */
export const SubscribeSchema = z.object({
  job_id: z.string().min(1).max(256),
  from_event_seq: z.number().int().nonnegative().optional(),
  history: z.boolean().optional(),
});

/** A `job.subscribe` payload. */
export type Subscribe = z.infer<typeof SubscribeSchema>;

/** `job.unsubscribe` payload. */
export const UnsubscribeSchema = z.object({ job_id: z.string().min(1).max(256) });

/** A `job.unsubscribe` payload. */
export type Unsubscribe = z.infer<typeof UnsubscribeSchema>;

/** `job.subscribed` payload. */
export const SubscribedSchema = z.object({
  job_id: z.string(),
  current_status: JobStatusSchema,
  agent: z.string(),
  lease: LeaseSchema,
  lease_constraints: LeaseConstraintsSchema.optional(),
  budget: z.record(z.string(), z.number()).optional(),
  credentials: z.array(CredentialSchema).optional(),
  parent_job_id: z.string().nullable(),
  trace_id: z.string(),
  subscribed_from: z.number().int().nonnegative(),
  replayed: z.boolean(),
});

/** A `job.subscribed` payload. */
export type Subscribed = z.infer<typeof SubscribedSchema>;

/** `session.error` payload. */
export const SessionErrorSchema = ErrorPayloadSchema;

/**
 * Every message type and the payload it carries, in either direction: what
 * an envelope of that type is built with (`encodeEnvelope`)
 * is what the schemas above decode.
 */
export interface Payloads {
  /** Client → runtime: open or resume a session. */
  "session.hello": Hello;
  /** Runtime → client: the session is open. */
  "session.welcome": Welcome;
  /** Either side: the connection is ending; the session stays resumable. */
  "session.bye": Bye;
  /** Client → runtime: end the session for good. */
  "session.close": Empty;
  /** Runtime → client: the session is ended. */
  "session.closed": Empty;
  /** Either side: liveness check. */
  "session.ping": Ping;
  /** Either side: the answer to a ping. */
  "session.pong": Pong;
  /** Client → runtime: events processed so far. */
  "session.ack": Ack;
  /** Client → runtime: list jobs. */
  "session.list_jobs": ListJobs;
  /** Runtime → client: one page of jobs. */
  "session.jobs": Jobs;
  /** Runtime → client: a session-level error. */
  "session.error": ErrorPayload;
  /** Client → runtime: run a job. */
  "job.submit": Submit;
  /** Runtime → client: the job was admitted. */
  "job.accepted": Accepted;
  /** Runtime → client: one event of a job. */
  "job.event": JobEventPayload;
  /** Runtime → client: the job succeeded. */
  "job.result": Result;
  /** Runtime → client: the job (or a request about it) failed. */
  "job.error": JobError;
  /** Client → runtime: cancel a job. */
  "job.cancel": Cancel;
  /** Runtime → client: the job is being cancelled. */
  "job.cancelled": Cancel;
  /** Client → runtime: follow a job. */
  "job.subscribe": Subscribe;
  /** Runtime → client: the subscription started. */
  "job.subscribed": Subscribed;
  /** Client → runtime: stop following a job. */
  "job.unsubscribe": Unsubscribe;
  /** Client → runtime (vendor): input for a running job. */
  "x-arcp-deno.job.input": Input;
  /** Runtime → client (vendor): the input was recorded and queued. */
  "x-arcp-deno.job.input_accepted": InputAccepted;
  /** Client → runtime (vendor): read a job's transcript. */
  "x-arcp-deno.job.transcript": Transcript;
  /** Runtime → client (vendor): one page of a transcript. */
  "x-arcp-deno.job.transcript_page": TranscriptPage;
  /** Runtime → client (vendor): a vendor request was refused. */
  "x-arcp-deno.refused": Refused;
}

/** An ARCP message type. */
export type MessageType = keyof Payloads;
