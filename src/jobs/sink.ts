/**
 * How the jobs layer hands envelopes to sessions without knowing about
 * sockets: a session stamps an envelope with its next `event_seq`, the jobs
 * layer commits the stamped envelope together with its own writes, and only
 * then asks the session to deliver it.
 *
 * @module
 */
import { EnvelopeEncoding } from "../protocol/encode.ts";
import type { Feature } from "../protocol/features.ts";
import type { MessageType, Payloads } from "../protocol/messages.ts";
import type { KvWrite } from "../store/large_value.ts";

/** Job-scoped envelope types that carry an `event_seq`. */
export type SeqType = "job.event" | "job.result" | "job.error";

/** The payload of a job-scoped envelope that carries an `event_seq`. */
export type SeqPayload = Payloads[SeqType];

/**
 * A job envelope on its way to sessions, encoded once: each session that
 * takes it splices in its own id, session id and seq.
 */
export interface JobEnvelope {
  /** What sessions get. */
  encoding: EnvelopeEncoding<SeqType>;
  /** What the logs keep instead, when the payload carries a secret. */
  logEncoding?: EnvelopeEncoding<SeqType>;
}

/**
 * Encodes a job envelope for every session it goes to.
 *
 * @param type the envelope type
 * @param jobId the job
 * @param traceId the job's trace id (an empty one is left out)
 * @param payload what sessions get
 * @param logPayload what the logs keep instead, when `payload` carries a secret
 * @param payloadJson `JSON.stringify(payload)`, when the caller has it already
 * @returns the envelope
 */
export function jobEnvelope(
  type: SeqType,
  jobId: string,
  traceId: string | undefined,
  payload: SeqPayload,
  logPayload?: SeqPayload,
  payloadJson?: string,
): JobEnvelope {
  const trace_id = traceId || undefined;
  return {
    encoding: new EnvelopeEncoding({ type, job_id: jobId, trace_id, payload }, payloadJson),
    logEncoding: logPayload &&
      new EnvelopeEncoding({ type, job_id: jobId, trace_id, payload: logPayload }),
  };
}

/** An envelope stamped for one session, not yet committed. */
export interface Staged {
  /** Its `event_seq` in that session. */
  seq: number;
  /** The serialized envelope. */
  text: string;
  /** The writes that log it. */
  writes: KvWrite[];
  /** The envelope as logged (differs from `text` only when secrets were redacted). */
  logged: string;
}

/** A session, as the jobs layer sees it. */
export interface EventSink {
  /** The session id. */
  readonly sessionId: string;
  /** The session's principal. */
  readonly principal: string;
  /**
   * Stamps a job envelope with this session's next `event_seq`.
   *
   * @param envelope the envelope
   * @param withRecord whether its writes include the session record when it
   *   is due (default true); without, the caller commits
   *   {@linkcode logRecordWrite} with them
   * @returns the stamped envelope, or undefined when this session did not negotiate the event's feature
   */
  stage(envelope: JobEnvelope, withRecord?: boolean): Staged | undefined;
  /**
   * The write that persists the session record as it is now.
   *
   * @returns the write
   */
  recordWrite(): KvWrite;
  /**
   * The session record write a commit of its log entries needs: none when
   * only its `last_seq` changed since it was last written, recently (the
   * log's tail carries that).
   *
   * @returns the write, or undefined
   */
  logRecordWrite(): KvWrite | undefined;
  /** Whether the session negotiated a feature. */
  has(feature: Feature): boolean;
  /** Sends a committed envelope, if the session is connected. */
  deliver(staged: Staged): void;
  /** Sends an envelope without `event_seq` (e.g. `job.cancelled`), if connected. */
  sendControl<T extends MessageType>(
    type: T,
    payload: Payloads[T],
    extra?: { job_id?: string; trace_id?: string },
  ): void;
  /**
   * Tells the session that a commit of its envelopes failed; the session
   * fills their seqs so its stream stays gap-free. With `fillAs`, the
   * envelopes belong to a job the client never heard of (its submit was
   * refused, which tells the client): the fillers name that id instead, and
   * the session reports nothing more.
   */
  fault(error: unknown, lost?: readonly Staged[], fillAs?: string): void;
  /**
   * Whether the session's unacknowledged backlog has just crossed its
   * back-pressure threshold (true once per crossing).
   */
  crossedBackPressure(): boolean;
  /** Set once the session has left memory; jobs stop feeding it. */
  readonly evicted: boolean;
  /**
   * Where feeding a job that runs on another node resumes: the first
   * position of its history not yet in this session's log (0 when none was).
   *
   * @param jobId the job
   * @returns the position
   */
  fedFrom(jobId: string): number;
  /**
   * Records, in the session record the next staged envelope commits, that
   * the job's history is in this session's log up to `next` (exclusive);
   * undefined forgets the job (it ended).
   *
   * @param jobId the job
   * @param next the next position to feed, or undefined
   */
  markFed(jobId: string, next: number | undefined): void;
  /**
   * Records, in the session record the next staged envelope commits, that
   * this subscriber has a job's history up to `next` (exclusive); undefined
   * ends the subscription (unsubscribed, or the job ended).
   *
   * @param jobId the job
   * @param next the next position to deliver, or undefined
   */
  markSubscribed(jobId: string, next: number | undefined): void;
  /**
   * The jobs this session subscribed to, with the first history position
   * of each not yet in its log.
   *
   * @returns job id and position pairs
   */
  subscriptions(): Array<[string, number]>;
}

/** Finds the in-memory session for an id. */
export type SinkLookup = (sessionId: string) => EventSink | undefined;
