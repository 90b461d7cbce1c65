/**
 * A session: a principal's durable conversation with the runtime. It
 * outlives its connection (a detached session keeps logging its jobs'
 * events) and the process (its record and log are in KV). Delivery to the
 * attached connection is strictly in `event_seq` order, without gaps or
 * repeats, across replays (resume, or recovery from a stalled socket).
 *
 * @module
 */
import { encodeEnvelope } from "../protocol/encode.ts";
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import type { EventBody, JobEventPayload } from "../protocol/events.ts";
import type { Feature } from "../protocol/features.ts";
import { INPUT_FEATURE, INPUT_KIND } from "../protocol/job_input.ts";
import { newUlid } from "../protocol/ids.ts";
import type { JobError, MessageType, Payloads } from "../protocol/messages.ts";
import { type EventSink, type JobEnvelope, jobEnvelope, type Staged } from "../jobs/sink.ts";
import type { Logger } from "../logger.ts";
import { StoreDamageError } from "../store/damage.ts";
import type { KvWrite } from "../store/large_value.ts";
import type { SessionRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import type { Transport } from "../transport/transport.ts";
import { isStorageFailure } from "../store/group_commit.ts";
import type { SessionEvents } from "./operator_events.ts";

/** `job.accepted` envelopes kept for a detached session, at most. */
const MAX_PENDING_ACCEPTED = 100;

/** How long a close behind unread data may take before the socket is dropped (ms). */
const CLOSE_GRACE_MS = 5_000;

/** How often a paused replay looks at its socket again: from this (ms)… */
const DRAIN_POLL_MIN_MS = 4;
/** …doubling up to this (ms) while the socket stays full. */
const DRAIN_POLL_MAX_MS = 50;

/**
 * A replay looks at its socket's buffer once per this many characters sent
 * (a socket's window), so it overshoots the pause mark by at most that.
 */
const CHECK_EVERY_CHARS = 64 * 1024;

/**
 * How stale the stored record may grow while only its `last_seq` changes
 * (ms): a commit of log entries rewrites it only once this has passed since
 * its last write, or when anything else in it changed. Its `last_seq` is
 * read back from the log's tail ({@linkcode Store.lastLoggedSeq}), so the
 * bound keeps only its `updated_at` (a crashed node's sessions count as
 * detached from it) and its time to live close to the log's.
 */
export const RECORD_REFRESH_MS = 1_000;

/** What a record write carries besides `last_seq` (read from the log) and `updated_at`. */
function recordState(record: SessionRecord): string {
  const { last_seq: _, updated_at: __, ...rest } = record;
  return JSON.stringify(rest);
}

/** Where delivery pauses: at most half the transport's cap, so events alone never pass it. */
const pauseAt = (policy: SessionPolicy, transport: Transport): number =>
  Math.min(policy.maxBufferedBytes, transport.maxBufferedAmount / 2);

/** Event kinds a session receives only when it negotiated their feature. */
const KIND_FEATURE: Record<string, Feature> = {
  progress: "progress",
  result_chunk: "result_chunk",
  [INPUT_KIND]: INPUT_FEATURE,
};

/** How a session keeps and paces what it sends. */
export interface SessionPolicy {
  /** Session record and log TTL in KV (ms). */
  logTtlMs: number;
  /** Socket buffer above which delivery pauses (bytes). */
  maxBufferedBytes: number;
  /** How long a paused socket may stay stuck before it is closed (ms). */
  stallTimeoutMs: number;
  /** Unacknowledged envelopes above which jobs feeding the session get `back_pressure`. */
  backPressureLag: number;
  /** Where a connection ended for a storage fault is reported; default nowhere. */
  log?: Logger;
}

/** One session. */
export class Session implements EventSink {
  /** The durable record. */
  readonly record: SessionRecord;
  /** Set once the session is dropped from memory; jobs stop feeding it. */
  evicted = false;
  #store: Store;
  #policy: SessionPolicy;
  #transport: Transport | undefined;
  #features: Set<string>;
  /** Highest seq written to the current transport. */
  #sentSeq = 0;
  /** Highest seq known to be in KV: replay must reach it (or find it held). */
  #committedSeq: number;
  /** While replaying from KV (resume, or after a stall), live deliveries wait here. */
  #held: Staged[] | undefined;
  /** The socket stopped draining: deliveries are left to the log, not held in memory. */
  #stalled = false;
  #stallTimer: ReturnType<typeof setInterval> | undefined;
  #pressured = false;
  /** Live texts of held envelopes whose logged copy is redacted, by seq: replay sends these. */
  #unredacted = new Map<number, string>();
  #freeing: Promise<void> = Promise.resolve();
  /** The record as last written, less `last_seq` ({@linkcode recordState}). */
  #writtenState = "";
  /** When the record was last written (epoch ms); 0: not by this object, so the next commit writes it. */
  #writtenAt = 0;
  #events: SessionEvents;
  /** Called when the session has been detached for a while; see SessionRegistry. */
  onDetach: (() => void) | undefined;
  /** Called when a connection attaches; see SessionRegistry. */
  onAttach: (() => void) | undefined;

  /**
   * @param record the session's record
   * @param store where it is kept
   * @param policy retention and pacing
   * @param events where operator events (a slow reader closed) are reported
   */
  constructor(
    record: SessionRecord,
    store: Store,
    policy: SessionPolicy,
    events: SessionEvents,
  ) {
    this.record = record;
    this.#store = store;
    this.#policy = policy;
    this.#events = events;
    this.#features = new Set(record.features);
    // A record read from KV was committed with its log entries; a new one has none.
    this.#committedSeq = record.last_seq;
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
  has(feature: Feature): boolean {
    return this.#features.has(feature);
  }

  /**
   * Replaces the negotiated features (a resume renegotiates).
   *
   * @param features the new set
   */
  setFeatures(features: Feature[]): void {
    this.record.features = features;
    this.#features = new Set(features);
  }

  /**
   * Attaches a connection. Any connection already attached is closed: a
   * valid resume takes the session over, so a half-open socket never blocks it.
   *
   * @param transport the connection
   * @param lastSeenSeq the client already has every envelope up to this seq
   */
  attach(transport: Transport, lastSeenSeq: number): void {
    const old = this.#transport;
    if (old && old !== transport) old.close(1000, "session resumed on another connection");
    this.#transport = transport;
    this.#sentSeq = lastSeenSeq;
    this.#held = lastSeenSeq < this.record.last_seq ? [] : undefined;
    this.#stalled = false;
    delete this.record.detached_at;
    this.onAttach?.();
  }

  /**
   * Closes the attached connection, if any (its close handler detaches it).
   *
   * @param code WebSocket close code
   * @param reason close reason
   */
  disconnect(code: number, reason: string): void {
    this.#transport?.close(code, reason);
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
    this.#held = undefined;
    this.#stopStallWatch();
    this.record.detached_at = Date.now();
    this.onDetach?.();
    return true;
  }

  /**
   * The write that persists the record.
   *
   * @returns the write
   */
  recordWrite(): KvWrite {
    return this.#writeOf(this.record);
  }

  /** The write of a record of this session, noted as the one last written. */
  #writeOf(record: SessionRecord): KvWrite {
    // sessionWrite stores a copy, so later changes to the record do not reach this write.
    const write = this.#store.sessionWrite(record, this.#policy.logTtlMs);
    this.#writtenState = recordState(record);
    this.#writtenAt = (write.value as SessionRecord).updated_at!;
    return write;
  }

  /**
   * The record write a commit of this session's log entries needs: none
   * when only `last_seq` changed since the record was last written (the
   * log's tail has it) and that write is fresher than
   * {@linkcode RECORD_REFRESH_MS}.
   *
   * @returns the write, or undefined
   */
  logRecordWrite(): KvWrite | undefined {
    if (
      Date.now() - this.#writtenAt < RECORD_REFRESH_MS &&
      recordState(this.record) === this.#writtenState
    ) return undefined;
    return this.recordWrite();
  }

  /**
   * Sends every logged envelope after the client's last seen seq, then
   * whatever arrived live meanwhile. Call after {@linkcode attach}. A log
   * that cannot be read whole (an entry KV refuses, one that does not
   * reassemble, a seq missing) ends the connection with `session.error`
   * `INTERNAL_ERROR` (`details.storage`) and close 1011: the client never
   * waits on a replay that stopped short.
   *
   * @returns true once caught up; false when the connection went away, was
   *   replaced, or was ended for a storage fault
   */
  async replay(): Promise<boolean> {
    const transport = this.#transport;
    if (!transport) return false;
    try {
      return await this.#replay(transport);
    } catch (err) {
      this.#endForFault(transport, err);
      return false;
    }
  }

  async #replay(transport: Transport): Promise<boolean> {
    const pending = this.record.pending_accepted;
    if (pending?.length) {
      for (const text of pending) transport.send(text);
      delete this.record.pending_accepted;
      await this.#store.write([this.recordWrite()]);
    }
    if (!this.#held) return true;
    // Characters sent since the socket's buffer was last looked at: it is looked
    // at again once they could take it a window past the pause mark, not
    // before every envelope.
    let unchecked = Infinity;
    for await (const page of this.#store.sessionLog(this.sessionId, this.#sentSeq)) {
      for (const [seq, logged] of page) {
        if (this.#transport !== transport) return false;
        if (seq !== this.#sentSeq + 1) this.#skipTo(seq);
        if (unchecked + logged.length > CHECK_EVERY_CHARS) {
          if (
            transport.bufferedAmount > pauseAt(this.#policy, transport) &&
            !(await this.#drained(transport))
          ) return false;
          unchecked = 0;
        }
        // A catch-up of this connection sends the live text, not the redacted copy in KV.
        const text = this.#unredacted.size > 0 ? this.#unredacted.get(seq) ?? logged : logged;
        transport.send(text);
        unchecked += text.length;
        this.#unredacted.delete(seq);
        this.#sentSeq = seq;
      }
    }
    if (this.#transport !== transport) return false;
    // What the log did not have must be held (committed after the listing read past it).
    const held = (this.#held ?? []).filter((staged) => staged.seq > this.#sentSeq);
    this.#skipTo(held[0]?.seq ?? this.#committedSeq + 1);
    this.#held = undefined;
    for (const staged of held) this.#send(staged);
    return true;
  }

  /**
   * The next seq to send is `next`: the seqs between the last sent and it
   * must be ones the client acknowledged (their entries freed), else the log
   * lost them.
   *
   * @throws {StoreDamageError} `missing`, naming the seqs
   */
  #skipTo(next: number): void {
    const from = Math.max(this.#sentSeq, this.record.acked_seq) + 1;
    const to = next - 1;
    if (to < from) {
      this.#sentSeq = Math.max(this.#sentSeq, to);
      return;
    }
    throw new StoreDamageError(
      "missing",
      `the session log lacks ${from === to ? `seq ${from}` : `seqs ${from}–${to}`}`,
      { from, to },
    );
  }

  /** A replay that failed: report it and end the connection, so the client resumes later. */
  #endForFault(transport: Transport, err: unknown): void {
    const error = err instanceof ArcpError ? err : new StoreDamageError(
      "unreadable",
      `the session log could not be replayed: ${toArcpError(err).message}`,
    );
    this.#policy.log?.error("session log replay failed; connection closed", {
      session_id: this.sessionId,
      sent_seq: this.#sentSeq,
      error: error.message,
    });
    if (this.#transport !== transport) return;
    this.endConnection(error, "session log could not be replayed");
  }

  /**
   * Ends the attached connection for a fault the session cannot carry on
   * past: `session.error`, then close 1011 (the socket is dropped if the
   * close cannot get through). The session stays resumable.
   *
   * @param error what went wrong
   * @param reason the close reason
   */
  endConnection(error: ArcpError, reason: string): void {
    const transport = this.#transport;
    if (!transport) return;
    this.sendControl("session.error", error.toPayload());
    this.#giveUp(transport, 1011, reason);
  }

  /**
   * Where this session's feed of a job running on another node stands.
   *
   * @param jobId the job
   * @returns the first history position not yet fed (0: none fed)
   */
  fedFrom(jobId: string): number {
    return this.record.fed?.[jobId] ?? 0;
  }

  /**
   * Records how far this session was fed a job running on another node.
   *
   * @param jobId the job
   * @param next the first position not yet fed; undefined once the job ended
   */
  markFed(jobId: string, next: number | undefined): void {
    // A new object each time: a write already staged keeps the map it was staged with.
    const fed = { ...this.record.fed };
    if (next === undefined) delete fed[jobId];
    else fed[jobId] = next;
    if (Object.keys(fed).length > 0) this.record.fed = fed;
    else delete this.record.fed;
  }

  /**
   * Records how far this session, subscribed to a job, has its history.
   *
   * @param jobId the job
   * @param next the first position not yet delivered; undefined once unsubscribed or ended
   */
  markSubscribed(jobId: string, next: number | undefined): void {
    const subscribed = { ...this.record.subscribed };
    if (next === undefined) delete subscribed[jobId];
    else subscribed[jobId] = next;
    if (Object.keys(subscribed).length > 0) this.record.subscribed = subscribed;
    else delete this.record.subscribed;
  }

  /**
   * The jobs this session subscribed to, and how far each was delivered.
   *
   * @returns job id and first position not yet delivered
   */
  subscriptions(): Array<[string, number]> {
    return Object.entries(this.record.subscribed ?? {});
  }

  /**
   * Stamps a job envelope with the next `event_seq`.
   *
   * @param envelope the envelope, encoded once for every session it goes to
   * @param withRecord whether its writes include the session record when it
   *   is due (default true); without, the caller commits
   *   {@linkcode logRecordWrite} with them
   * @returns the stamped envelope, or undefined when the session did not negotiate its feature
   */
  stage(envelope: JobEnvelope, withRecord = true): Staged | undefined {
    const payload = envelope.encoding.shared.payload;
    const feature = "kind" in payload && Object.hasOwn(KIND_FEATURE, payload.kind)
      ? KIND_FEATURE[payload.kind]
      : undefined;
    if (feature && !this.#features.has(feature)) return undefined;
    const seq = ++this.record.last_seq;
    const id = newUlid();
    const text = envelope.encoding.frame(id, this.sessionId, seq);
    // Secrets (a rotated credential) go to the socket, never to KV.
    const logged = envelope.logEncoding?.frame(id, this.sessionId, seq) ?? text;
    const writes = this.#store.sessionLogWrites(this.sessionId, seq, logged, this.#policy.logTtlMs);
    if (withRecord) {
      const record = this.logRecordWrite();
      if (record) writes.push(record);
    }
    return { seq, text, logged, writes };
  }

  /**
   * Sends a committed envelope, in seq order.
   *
   * @param staged what {@linkcode stage} returned, now durable
   */
  deliver(staged: Staged): void {
    this.#committedSeq = Math.max(this.#committedSeq, staged.seq);
    if (!this.#transport) return;
    if (this.#held) {
      if (!this.#stalled) this.#held.push(staged);
      if (staged.text !== staged.logged) this.#unredacted.set(staged.seq, staged.text);
    } else this.#send(staged);
  }

  #send(staged: Staged): void {
    const transport = this.#transport!;
    if (staged.seq <= this.#sentSeq) return;
    if (transport.bufferedAmount > pauseAt(this.#policy, transport)) {
      // The client is not reading. Stop writing (the log has everything)
      // and catch up from KV once it drains, or close if it never does.
      this.#held = [];
      this.#stalled = true;
      this.#watchStall(transport);
      return;
    }
    transport.send(staged.text);
    this.#sentSeq = staged.seq;
  }

  /**
   * Waits for a socket's buffer to drain below half the cap. A socket that
   * stays stuck past the stall timeout is closed (the client resumes later).
   *
   * @returns true once drained, false when the socket was closed or replaced
   */
  async #drained(transport: Transport): Promise<boolean> {
    const since = Date.now();
    // A reading client drains half the pause mark in a few milliseconds: a
    // fixed 50 ms wait left a resume replay idle most of its time. While the
    // socket drains it is looked at again soon; while it does not, less often.
    let waitMs = DRAIN_POLL_MIN_MS;
    let buffered = transport.bufferedAmount;
    while (buffered > pauseAt(this.#policy, transport) / 2) {
      if (this.#transport !== transport) return false;
      if (Date.now() - since > this.#policy.stallTimeoutMs) {
        this.#giveUp(transport, 1008, "client stopped reading; resume to continue");
        return false;
      }
      await new Promise((r) => setTimeout(r, waitMs));
      const now = transport.bufferedAmount;
      waitMs = now < buffered ? DRAIN_POLL_MIN_MS : Math.min(DRAIN_POLL_MAX_MS, waitMs * 2);
      buffered = now;
    }
    return this.#transport === transport;
  }

  #watchStall(transport: Transport): void {
    if (this.#stallTimer !== undefined) return;
    const since = Date.now();
    this.#stallTimer = setInterval(() => {
      if (this.#transport !== transport) return this.#stopStallWatch();
      if (transport.bufferedAmount <= pauseAt(this.#policy, transport) / 2) {
        this.#stopStallWatch();
        this.#stalled = false;
        void this.replay();
      } else if (Date.now() - since > this.#policy.stallTimeoutMs) {
        this.#stopStallWatch();
        this.#events.policyClose("slow_reader", transport.remoteAddr, this, {
          queued_bytes: transport.bufferedAmount,
          stall_timeout_ms: this.#policy.stallTimeoutMs,
        });
        this.#giveUp(transport, 1008, "client stopped reading; resume to continue");
      }
    }, 100);
  }

  /** Closes a socket, or drops it after a grace if the close cannot get through (a detach clears the timer). */
  #giveUp(transport: Transport, code: number, reason: string): void {
    transport.close(code, reason);
    this.#stopStallWatch();
    this.#stallTimer = setTimeout(() => {
      if (this.#transport === transport) transport.abort();
    }, CLOSE_GRACE_MS);
  }

  #stopStallWatch(): void {
    if (this.#stallTimer !== undefined) clearInterval(this.#stallTimer);
    this.#stallTimer = undefined;
  }

  /**
   * Whether the unacknowledged backlog just crossed the back-pressure
   * threshold. Only sessions that negotiated `ack` can be behind.
   *
   * @returns true once per crossing
   */
  crossedBackPressure(): boolean {
    if (this.#pressured || !this.#features.has("ack")) return false;
    if (this.record.last_seq - this.record.acked_seq <= this.#policy.backPressureLag) return false;
    this.#pressured = true;
    return true;
  }

  /**
   * Records a `session.ack` and frees the acknowledged part of the log.
   *
   * @param seq the client's last processed seq
   * @returns resolves once the freed entries are deleted
   */
  ack(seq: number): Promise<void> {
    const upTo = Math.min(seq, this.record.last_seq);
    if (upTo <= this.record.acked_seq) return this.#freeing;
    this.record.acked_seq = upTo;
    if (this.record.last_seq - upTo <= this.#policy.backPressureLag / 2) this.#pressured = false;
    this.#freeing = this.#freeing.then(async () => {
      const from = this.record.floor_seq;
      if (upTo <= from) return;
      // The record commits with the last of the deletes: the log's tail, which
      // may carry the only copy of last_seq, never goes before a record that has it.
      const record = this.#writeOf({ ...this.record, floor_seq: upTo });
      try {
        await this.#store.freeSessionLog(this.sessionId, from, upTo, this.#policy.logTtlMs, record);
      } catch (err) {
        this.#writtenAt = 0;
        throw err;
      }
      this.record.floor_seq = Math.max(this.record.floor_seq, upTo);
    }).catch((err) => {
      // Freeing never waits for a failing disk, so the messages behind an
      // ack do not either; the entries stay until a later ack or their TTL,
      // and the client has already been told storage is failing.
      if (!isStorageRefusal(err)) this.fault(err);
    });
    return this.#freeing;
  }

  /**
   * Stamps, commits and sends a seq-bearing envelope that belongs to this
   * session alone (a submit rejection, a refused cancel). While storage
   * fails it cannot be stored, so the same error goes out at once as a
   * seq-less `session.error` (the profile's failure of a pending request)
   * rather than waiting for the disk.
   *
   * @param jobId the job id the envelope names
   * @param traceId the trace id
   * @param payload the `job.error` payload
   * @returns resolves once sent (or failed)
   */
  async sendLoggedError(
    jobId: string,
    traceId: string | undefined,
    payload: JobError,
  ): Promise<void> {
    if (!this.#store.health().ok) {
      const { final_status: _, ...error } = payload;
      this.sendControl("session.error", error, { trace_id: traceId });
      return;
    }
    const staged = this.stage(jobEnvelope("job.error", jobId, traceId, payload))!;
    try {
      await this.#store.write(staged.writes);
      this.deliver(staged);
    } catch (err) {
      this.fault(err, [staged]);
    }
  }

  /**
   * Sends an envelope that carries no `event_seq`.
   *
   * @param type envelope type
   * @param payload the payload
   * @param extra the job the envelope is about, and its trace id
   */
  sendControl<T extends MessageType>(
    type: T,
    payload: Payloads[T],
    extra: { job_id?: string; trace_id?: string } = {},
  ): void {
    this.sendEncoded(type, this.encodeControl(type, payload, extra));
  }

  /**
   * Encodes an envelope that carries no `event_seq`, to be sent later with
   * {@linkcode sendEncoded} (built while the caller waits for something
   * else, so the send itself only queues the text).
   *
   * @param type envelope type
   * @param payload the payload
   * @param extra the job the envelope is about, and its trace id
   * @returns the envelope's text
   */
  encodeControl<T extends MessageType>(
    type: T,
    payload: Payloads[T],
    extra: { job_id?: string; trace_id?: string } = {},
  ): string {
    return encodeEnvelope({ type, session_id: this.sessionId, ...extra, payload });
  }

  /**
   * Sends an envelope built by {@linkcode encodeControl}, as
   * {@linkcode sendControl} sends it.
   *
   * @param type its type
   * @param text its text
   */
  sendEncoded(type: MessageType, text: string): void {
    if (this.#transport) this.#transport.send(text);
    else if (type === "job.accepted") {
      // A delegated child accepted while its session is detached: the client
      // gets this ahead of the replayed events when it resumes.
      (this.record.pending_accepted ??= []).push(text);
      if (this.record.pending_accepted.length > MAX_PENDING_ACCEPTED) {
        this.record.pending_accepted.shift();
      }
      this.#store.write([this.recordWrite()]).catch((err) => this.fault(err));
    }
  }

  /**
   * Reports a session-level fault to the client. Envelopes whose commit
   * failed are replaced, at the same seqs, by a stored `log` error event, so
   * the stream stays gap-free; if even that cannot be stored the connection
   * is closed and the client's resume finds out.
   *
   * @param error what went wrong
   * @param lost envelopes that were stamped but never stored
   * @param fillAs the job id the fillers name, when the client never heard of
   *   the lost envelopes' job (its refusal reports the error instead)
   */
  fault(error: unknown, lost: readonly Staged[] = [], fillAs?: string): void {
    if (fillAs === undefined) {
      const err = error instanceof ArcpError ? error : new ArcpError(
        "INTERNAL_ERROR",
        `runtime could not store an event: ${toArcpError(error).message}`,
      );
      this.sendControl("session.error", err.toPayload());
    }
    for (const staged of lost) this.#fill(staged, fillAs);
  }

  #fill(staged: Staged, fillAs: string | undefined): void {
    const original = JSON.parse(staged.logged) as { job_id: string; trace_id?: string };
    if (fillAs !== undefined) {
      original.job_id = fillAs;
      delete original.trace_id;
    }
    const body: EventBody<"log"> = {
      level: "error",
      message: "an envelope of this job could not be stored and was dropped",
    };
    const payload: JobEventPayload = { kind: "log", ts: new Date().toISOString(), body };
    const text = encodeEnvelope({
      type: "job.event",
      session_id: this.sessionId,
      job_id: original.job_id,
      trace_id: original.trace_id || undefined,
      event_seq: staged.seq,
      payload,
    });
    const filler: Staged = {
      seq: staged.seq,
      text,
      logged: text,
      writes: this.#store.sessionLogWrites(this.sessionId, staged.seq, text, this.#policy.logTtlMs),
    };
    this.#store.write(filler.writes).then(
      () => this.deliver(filler),
      () => this.#transport?.close(1011, "runtime could not store events"),
    );
  }
}

/**
 * Whether a write was refused because storage is failing.
 *
 * @param err what the write rejected with
 * @returns true for a refusal of a fail-fast write, or a raw storage error
 */
function isStorageRefusal(err: unknown): boolean {
  return (err instanceof ArcpError && err.details?.storage !== undefined) || isStorageFailure(err);
}
