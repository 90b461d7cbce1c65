/**
 * The wire payloads the client hands to its caller, with their wire field
 * names (ARCP.md §3–§5). Most are written out here, with a doc line per
 * field; the decoder (`decode.ts`) assigns schema output to them, so a schema
 * change that breaks one of them fails type checking there. The agent entry,
 * the credential and the job state are the protocol's own types, shared with
 * the runtime.
 *
 * @module
 */
import type { AgentInventoryEntry, Credential, JobStatus } from "../protocol/messages.ts";

export type { JobStatus };

/** A lease: capability namespace → glob patterns (ARCP.md §5.2). */
export type Lease = Record<string, string[]>;

/** Lease constraints (ARCP.md §5.3). */
export interface LeaseConstraints {
  /** RFC 3339 UTC instant after which every lease operation fails. */
  expires_at?: string;
}

/**
 * An agent the runtime offers, from the welcome: its name, every version
 * (only the default unless `agent_versions` was negotiated) and the version
 * a bare name resolves to.
 */
export type AgentInfo = AgentInventoryEntry;

export type { Credential };

/** The `job.accepted` payload. */
export interface AcceptedPayload {
  /** The job. */
  job_id: string;
  /** The resolved agent, `name@version`. */
  agent: string;
  /** The effective lease (never wider than requested). */
  lease: Lease;
  /** The constraints, echoed. */
  lease_constraints?: LeaseConstraints;
  /** Initial budget counters per currency. */
  budget?: Record<string, number>;
  /** Provisioned credentials. */
  credentials?: Credential[];
  /** When the job was accepted (RFC 3339). */
  accepted_at: string;
  /** The parent, for a delegated job. */
  parent_job_id?: string;
  /** The parent's delegate id, for a delegated job. */
  delegate_id?: string;
  /** The job's trace id. */
  trace_id: string;
}

/** The `job.result` payload: the job succeeded. */
export interface JobResultPayload {
  /** Always `success`. */
  final_status: "success";
  /** The inline result. */
  result?: unknown;
  /** The id of a result streamed as `result_chunk` events, instead of `result`. */
  result_id?: string;
  /** Size in bytes of the streamed result. */
  result_size?: number;
  /** A short summary. */
  summary?: string;
}

/** The `job.event` payload (ARCP.md §5). */
export interface JobEventPayload {
  /** `log`, `status`, `progress`, ... or `x-vendor.<name>`. */
  kind: string;
  /** When it happened (RFC 3339 UTC). */
  ts: string;
  /** The kind's body. */
  body: Record<string, unknown>;
}

/** The body of a `result_chunk` event: one piece of a streamed result (ARCP.md §5.6). */
export interface ResultChunkBody {
  /** The streamed result this piece belongs to. */
  result_id: string;
  /** Position of the piece, from 0. */
  chunk_seq: number;
  /** The piece: text, or bytes in base64. */
  data: string;
  /** How `data` is encoded: `utf8` text stands for its UTF-8 bytes. */
  encoding: "utf8" | "base64";
  /** Whether more pieces follow; false on the last one. */
  more: boolean;
}

/** A `job.event` envelope. */
export interface JobEventEnvelope {
  /** Protocol version, `1.1`. */
  arcp: string;
  /** Envelope id. */
  id: string;
  /** Always `job.event`. */
  type: "job.event";
  /** The session it arrived on. */
  session_id: string;
  /** The job. */
  job_id: string;
  /** The job's trace id. */
  trace_id?: string;
  /** Position in the session's event sequence. */
  event_seq: number;
  /** Extensions, unknown keys included. */
  extensions?: Record<string, unknown>;
  /** The event. */
  payload: JobEventPayload;
}

/** One job as `session.jobs` lists it. */
export interface JobListEntry {
  /** The job. */
  job_id: string;
  /** `name@version`. */
  agent: string;
  /** Its state. */
  status: JobStatus;
  /** Its effective lease. */
  lease: Lease;
  /** The parent, for a delegated job. */
  parent_job_id?: string | null;
  /** When it was created (RFC 3339). */
  created_at: string;
  /** Its trace id. */
  trace_id?: string;
  /** The newest `event_seq` it took in its owning session. */
  last_event_seq: number;
}

/** The `session.jobs` payload. */
export interface JobsPayload {
  /** The id of the `session.list_jobs` envelope it answers. */
  request_id: string;
  /** One page of jobs, oldest first. */
  jobs: JobListEntry[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

/** The `job.subscribed` payload. */
export interface SubscribedPayload {
  /** The job. */
  job_id: string;
  /** Its state when the subscription started. */
  current_status: JobStatus;
  /** `name@version`. */
  agent: string;
  /** Its effective lease. */
  lease: Lease;
  /** Its constraints. */
  lease_constraints?: LeaseConstraints;
  /** Current budget counters. */
  budget?: Record<string, number>;
  /** Credentials, only for the submitting principal. */
  credentials?: Credential[];
  /** The parent, for a delegated job. */
  parent_job_id: string | null;
  /** Its trace id. */
  trace_id: string;
  /** This session's newest `event_seq` when the subscription started. */
  subscribed_from: number;
  /** Whether history is being replayed. */
  replayed: boolean;
}

/** The `session.pong` payload. */
export interface PongPayload {
  /** The nonce of the ping it answers. */
  ping_nonce: string;
  /** When the runtime got the ping (RFC 3339 UTC). */
  received_at: string;
}

/** The runtime's name and version, from the welcome. */
export interface RuntimeInfo {
  /** Runtime name. */
  name: string;
  /** Runtime version. */
  version: string;
}
