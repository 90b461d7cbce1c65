/**
 * A session: a principal's durable conversation with the runtime. It
 * outlives its connection (a detached session keeps logging its jobs'
 * events) and the process (its record and log are in KV).
 *
 * @module
 */
import { ARCP_VERSION } from "../protocol/envelope.ts";
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import { newUlid } from "../protocol/ids.ts";
import type { EventSink, SeqType, Staged } from "../jobs/sink.ts";
import type { SessionRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import type { Transport } from "../transport/transport.ts";

/** Event kinds a session receives only when it negotiated their feature. */
const KIND_FEATURE: Record<string, string> = { progress: "progress", result_chunk: "result_chunk" };

/** How long session records and logs stay in KV. */
export interface Retention {
  /** Session record and log TTL (ms). */
  logTtlMs: number;
}

/** One session. */
export class Session implements EventSink {
  /** The durable record. */
  readonly record: SessionRecord;
  #store: Store;
  #retention: Retention;
  #transport: Transport | undefined;
  #features: Set<string>;

  /**
   * @param record the session's record
   * @param store where it is kept
   * @param retention how long it is kept
   */
  constructor(record: SessionRecord, store: Store, retention: Retention) {
    this.record = record;
    this.#store = store;
    this.#retention = retention;
    this.#features = new Set(record.features);
  }

  /** The session id. */
  get sessionId(): string {
    return this.record.session_id;
  }

  /** The principal. */
  get principal(): string {
    return this.record.principal;
  }

  /** Whether a connection is attached. */
  get connected(): boolean {
    return this.#transport !== undefined;
  }

  /**
   * Whether a feature was negotiated.
   *
   * @param feature the flag
   * @returns true when negotiated
   */
  has(feature: string): boolean {
    return this.#features.has(feature);
  }

  /**
   * Attaches a connection.
   *
   * @param transport the connection
   */
  attach(transport: Transport): void {
    this.#transport = transport;
    delete this.record.detached_at;
  }

  /**
   * Detaches the connection, if it is the one given.
   *
   * @param transport the connection that went away
   * @returns true when it was attached
   */
  detach(transport: Transport): boolean {
    if (this.#transport !== transport) return false;
    this.#transport = undefined;
    this.record.detached_at = Date.now();
    return true;
  }

  /**
   * The write that persists the record.
   *
   * @returns the write
   */
  recordWrite(): ReturnType<Store["sessionWrite"]> {
    return this.#store.sessionWrite({ ...this.record }, this.#retention.logTtlMs);
  }

  /**
   * Stamps a job envelope with the next `event_seq`.
   *
   * @param type envelope type
   * @param jobId the job
   * @param traceId the job's trace id
   * @param payload the payload
   * @returns the stamped envelope, or undefined when the session did not negotiate its feature
   */
  stage(
    type: SeqType,
    jobId: string,
    traceId: string,
    payload: Record<string, unknown>,
  ): Staged | undefined {
    const feature = type === "job.event" ? KIND_FEATURE[payload.kind as string] : undefined;
    if (feature && !this.#features.has(feature)) return undefined;
    const seq = ++this.record.last_seq;
    const text = JSON.stringify({
      arcp: ARCP_VERSION,
      id: newUlid(),
      type,
      session_id: this.sessionId,
      job_id: jobId,
      trace_id: traceId,
      event_seq: seq,
      payload,
    });
    return {
      seq,
      text,
      writes: [
        ...this.#store.sessionLogWrites(this.sessionId, seq, text, this.#retention.logTtlMs),
        this.recordWrite(),
      ],
    };
  }

  /**
   * Sends a committed envelope.
   *
   * @param staged what {@linkcode stage} returned, now durable
   */
  deliver(staged: Staged): void {
    this.#transport?.send(staged.text);
  }

  /**
   * Stamps, commits and sends a seq-bearing envelope that belongs to this
   * session alone (a submit rejection, a refused cancel).
   *
   * @param jobId the job id the envelope names
   * @param traceId the trace id
   * @param payload the `job.error` payload
   * @returns resolves once sent (or failed)
   */
  async sendLoggedError(
    jobId: string,
    traceId: string | undefined,
    payload: Record<string, unknown>,
  ): Promise<void> {
    const seq = ++this.record.last_seq;
    const env: Record<string, unknown> = {
      arcp: ARCP_VERSION,
      id: newUlid(),
      type: "job.error",
      session_id: this.sessionId,
      job_id: jobId,
      event_seq: seq,
      payload,
    };
    if (traceId) env.trace_id = traceId;
    const text = JSON.stringify(env);
    try {
      await this.#store.write([
        ...this.#store.sessionLogWrites(this.sessionId, seq, text, this.#retention.logTtlMs),
        this.recordWrite(),
      ]);
      this.#transport?.send(text);
    } catch (err) {
      this.fault(err);
    }
  }

  /**
   * Sends an envelope that carries no `event_seq`.
   *
   * @param type envelope type
   * @param payload the payload
   * @param extra more envelope fields (job_id, trace_id)
   */
  sendControl(
    type: string,
    payload: Record<string, unknown>,
    extra: Record<string, unknown> = {},
  ): void {
    this.#transport?.send(
      JSON.stringify({
        arcp: ARCP_VERSION,
        id: newUlid(),
        type,
        session_id: this.sessionId,
        ...extra,
        payload,
      }),
    );
  }

  /**
   * Reports a session-level fault to the client.
   *
   * @param error what went wrong
   */
  fault(error: unknown): void {
    const err = error instanceof ArcpError ? error : new ArcpError(
      "INTERNAL_ERROR",
      `runtime could not store an event: ${toArcpError(error).message}`,
    );
    this.sendControl("session.error", err.toPayload());
  }
}
