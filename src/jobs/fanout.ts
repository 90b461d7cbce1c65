/**
 * Getting a job's envelopes to every session that should see them: the
 * owner session and subscribers, committed together with the job's own
 * history; history replay for late subscribers; and the back-pressure
 * signal when a session falls behind.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { newJobId } from "../protocol/ids.ts";
import type { JobEventPayload } from "../protocol/events.ts";
import { nowIso } from "../protocol/time.ts";
import type { Store } from "../store/store.ts";
import type { JobRecord } from "../store/records.ts";
import type { KvWrite } from "../store/large_value.ts";
import type { Logger } from "../logger.ts";
import {
  type EventSink,
  type JobEnvelope,
  jobEnvelope,
  type SeqPayload,
  type SeqType,
  type SinkLookup,
  type Staged,
} from "./sink.ts";
import type { LiveJob, Subscriber } from "./live_job.ts";
import type { AgentEvent } from "../sandbox/sandbox.ts";
import type { JobTable } from "./job_table.ts";
import type { OutputQuota } from "./output_quota.ts";
import { isAscii, utf8Length } from "./result_stream.ts";
import { TERMINAL_STATUSES } from "../protocol/messages.ts";
import { isInputEvent } from "./job_input.ts";
import { sliceSpent } from "../turn_slice.ts";

/** One entry of a job's own history: the envelope as its owner session got it. */
interface HistoryEntry {
  type: SeqType;
  job_id: string;
  trace_id?: string;
  /** The owner session's seq (or the latest before it, when the owner did not receive it). */
  event_seq?: number;
  payload: SeqPayload;
}

/** Options of {@linkcode Fanout.subscribe}. */
export interface SubscribeOptions {
  /** Replay history first. */
  history: boolean;
  /** Replay envelopes whose owner-session seq is above this. */
  fromEventSeq: number;
}

/** An accepted subscription. */
export interface Subscription {
  /** The job as it was when subscribed. */
  job: JobRecord;
  /** Replays history (if asked) and then switches to live delivery. */
  replay(): Promise<void>;
}

/**
 * Text one commit of a burst of events carries at most (its envelopes, once
 * in each log they go to), so the commit stays well inside KV's limits.
 */
const GROUP_CHARS = 120_000;

/** What one commit of a job's envelopes holds while it is put together. */
class Group {
  /** The writes: log entries first, the records at the commit. */
  readonly writes: KvWrite[] = [];
  /** Each session's staged envelope, in the order they are delivered. */
  readonly deliveries: Array<[EventSink, Staged]> = [];
  /** Sessions that crossed their back-pressure threshold. */
  readonly pressured: EventSink[] = [];
  /** Sessions staged to, whose records the commit writes. */
  readonly sinks = new Set<EventSink>();
  /** Characters of log text in it. */
  chars = 0;
  /** Log entries in it (the job's history and each session's log). */
  entries = 0;

  /** Stages an envelope for a session; undefined when it did not negotiate the event's feature. */
  stage(sink: EventSink, envelope: JobEnvelope): Staged | undefined {
    const staged = sink.stage(envelope, false);
    if (!staged) return undefined;
    this.add(staged.writes, staged.logged.length);
    this.deliveries.push([sink, staged]);
    this.sinks.add(sink);
    if (sink.crossedBackPressure()) this.pressured.push(sink);
    return staged;
  }

  /** Adds writes of a log entry of `chars` characters. */
  add(writes: KvWrite[], chars: number): void {
    for (const w of writes) this.writes.push(w);
    this.chars += chars;
    this.entries++;
  }
}

/** Envelopes read per replay step. */
const REPLAY_BATCH = 200;

/** Text one replay commit carries at most (well inside KV's ~800 KiB per atomic write). */
const REPLAY_GROUP_CHARS = 150_000;

/**
 * A `job.event` payload.
 *
 * @param kind the event kind
 * @param body the event body
 * @returns the payload, stamped now
 */
export function jobEvent(kind: string, body: Record<string, unknown>): JobEventPayload {
  return { kind, ts: nowIso(), body };
}

/**
 * The JSON of a `job.event` payload around its body's JSON: what
 * `JSON.stringify(payload)` gives, without serializing the body again. Its
 * `ts` is an RFC 3339 time (digits and `-:.TZ+`, nothing JSON escapes), so
 * it is quoted as it is; the kind is spelled once a run of one kind.
 *
 * @example
 * ```ts
 * import { jobEvent, jobEventJson } from "./fanout.ts";
 * const payload = jobEvent("log", { level: "info", message: "hi" });
 * console.log(jobEventJson(payload, JSON.stringify(payload.body)) === JSON.stringify(payload)); // true
 * ```
 *
 * @param payload the payload
 * @param bodyJson `JSON.stringify(payload.body)`
 * @returns the payload's JSON
 */
export function jobEventJson(payload: JobEventPayload, bodyJson: string): string {
  if (payload.kind !== lastKind.kind) {
    lastKind = { kind: payload.kind, head: `{"kind":${JSON.stringify(payload.kind)},"ts":"` };
  }
  return `${lastKind.head}${payload.ts}","body":${bodyJson}}`;
}

/** The kind of the last payload spelled, and its JSON up to the value of `ts`. */
let lastKind = { kind: "", head: '{"kind":"","ts":"' };

/**
 * Emits a `job.event`.
 *
 * @param live the job
 * @param kind the event kind
 * @param body the event body
 * @returns resolves once committed and delivered
 */
export type EmitEvent = (
  live: LiveJob,
  kind: string,
  body: Record<string, unknown>,
) => Promise<void>;

/** How {@linkcode Fanout.follow} feeds a session from a job's history in KV. */
export interface FollowOptions {
  /** The first position to read. */
  from: number;
  /**
   * The session owns the job: entries already in its log (staged to it by
   * the node running the job) are skipped, and how far it was fed is kept
   * in its record, so a node resuming it later neither repeats nor skips.
   */
  owner: boolean;
  /** Positions below this are history: only those past `fromEventSeq` go, and only with `history`. */
  historyBelow?: number;
  /** Replay history. */
  history?: boolean;
  /** Replay history entries whose owner-session seq is above this. */
  fromEventSeq?: number;
}

/** Emits job envelopes and serves subscriptions. */
export class Fanout {
  /** Jobs on other nodes this process feeds to sessions from KV, by session then job. */
  #follows = new Map<string, Map<string, AbortController>>();
  #store: Store;
  #sinks: SinkLookup;
  #log: Logger;
  #live: JobTable;
  #quota: OutputQuota;
  #overQuota: (live: LiveJob, error: ArcpError) => Promise<void>;
  /**
   * Jobs waiting to announce `running`, with when it is due (epoch ms), in
   * due order (insertion order: every job waits equally long). A job leaves
   * it when its `running` is staged, so a short job leaves no timer behind.
   */
  #runningWaits = new Map<LiveJob, number>();
  /** The timer of the first wait, while any job waits. */
  #runningTimer: ReturnType<typeof setTimeout> | undefined;
  /** How long a `running` waits for company (`JobLimits.runningWaitMs`). */
  #runningWaitMs: number;
  /** Counts `job.event`s by kind (`n` of one kind at a time), for the operator metrics. */
  #onEvent: ((kind: string, n: number) => void) | undefined;

  /**
   * @param deps the store, session lookup, logger, the live jobs, the output
   *   quotas, how a job past one ends and how long a `running` waits for company
   */
  constructor(deps: {
    store: Store;
    sinks: SinkLookup;
    log: Logger;
    live: JobTable;
    quota: OutputQuota;
    overQuota: (live: LiveJob, error: ArcpError) => Promise<void>;
    onEvent?: (kind: string, n: number) => void;
    runningWaitMs: number;
  }) {
    this.#runningWaitMs = deps.runningWaitMs;
    this.#onEvent = deps.onEvent;
    this.#store = deps.store;
    this.#sinks = deps.sinks;
    this.#log = deps.log;
    this.#live = deps.live;
    this.#quota = deps.quota;
    this.#overQuota = deps.overQuota;
  }

  /**
   * Announces that a job runs: its `status {phase: "running"}` is staged
   * in front of the job's next envelope, in the same commit, or on its own
   * after a few milliseconds when nothing else comes first. Either way it
   * is the job's first envelope after `job.accepted`, numbered when it is
   * staged, so no session sees seqs out of order.
   *
   * @param live the job, just started
   */
  announceRunning(live: LiveJob): void {
    live.runningDue = nowIso();
    // One timer serves every job waiting (a timer per job was a measurable
    // part of a short job's cost), and a job that stages its `running`
    // sooner leaves the wait: once none waits the timer is cleared, so jobs
    // that end within the wait (an echo) never wake the event loop for it.
    this.#runningWaits.set(live, Date.now() + this.#runningWaitMs);
    this.#runningTimer ??= setTimeout(() => this.#runningDueNow(), this.#runningWaitMs);
  }

  /**
   * Announces `running` for every job whose wait is over and that has not
   * announced it since, a turn's budget at a time (a burst of starts makes
   * hundreds due at once); the rest follow in the next turn, still in due
   * order, and each still ahead of whatever its job emits next.
   */
  #runningDueNow(): void {
    this.#runningTimer = undefined;
    const now = Date.now();
    let next: number | undefined;
    for (const [live, due] of this.#runningWaits) {
      if (due > now) {
        next = due;
        break;
      }
      if (sliceSpent()) {
        next = now;
        break;
      }
      this.#runningWaits.delete(live);
      if (live.runningDue && !live.ended && !live.abort.signal.aborted) this.events(live, []);
    }
    if (next !== undefined) {
      this.#runningTimer = setTimeout(() => this.#runningDueNow(), Math.max(0, next - now));
    }
  }

  /** Takes a job out of the wait for `running`; the timer goes once no job waits. */
  #leaveRunningWait(live: LiveJob): void {
    if (!this.#runningWaits.delete(live) || this.#runningWaits.size > 0) return;
    if (this.#runningTimer !== undefined) clearTimeout(this.#runningTimer);
    this.#runningTimer = undefined;
  }

  /** Stages a job's due `running` status into `group`, ahead of what the job emits next. */
  #stageRunning(live: LiveJob, owner: EventSink | undefined, group: Group): void {
    const ts = live.runningDue;
    if (ts === undefined) return;
    live.runningDue = undefined;
    this.#leaveRunningWait(live);
    this.#onEvent?.("status", 1);
    const payload: JobEventPayload = { kind: "status", ts, body: { phase: "running" } };
    this.#stage(live, "job.event", payload, owner, undefined, true, group);
  }

  /**
   * Emits a `job.event`.
   *
   * @param live the job
   * @param kind the event kind
   * @param body the event body
   * @returns resolves once committed and delivered
   */
  event(live: LiveJob, kind: string, body: Record<string, unknown>): Promise<void> {
    return this.events(live, [[kind, body]]);
  }

  /**
   * Emits `job.event`s, in order, staged together: each session's record and
   * the job's record are written once per commit rather than once per event,
   * and the events go in as few commits as their size allows. An event past
   * the job's output quota ends the job instead; the events before it still
   * go out.
   *
   * @param live the job
   * @param items `[kind, body]` of each event
   * @returns resolves once all are committed and delivered
   */
  events(live: LiveJob, items: readonly AgentEvent[]): Promise<void> {
    if (live.terminated) return Promise.resolve();
    const owner = this.#sinks(live.record.session_id);
    let group = new Group();
    this.#stageRunning(live, owner, group);
    let committed: Promise<void> = Promise.resolve();
    let kinds: Map<string, number> | undefined;
    let refused: ArcpError | undefined;
    // Indexed rather than destructured, as in the supervisor's check of them.
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const kind = item[0];
      const body = item[1];
      const json = item[2];
      const payload = jobEvent(kind, body);
      const output = !isInputEvent(payload);
      // Nothing is staged for an event past a quota: the job ends instead.
      refused = output ? this.#quota.refusal(live) : undefined;
      if (refused) break;
      if (kind === "progress") live.progress = body;
      kinds ??= new Map();
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      // The body's JSON from its check: the payload is spelled around it, not serialized again.
      const text = json === undefined ? undefined : jobEventJson(payload, json);
      this.#stage(live, "job.event", payload, owner, undefined, output, group, text, json);
      if (group.chars > GROUP_CHARS) {
        committed = this.#commit(live, group);
        group = new Group();
      }
    }
    if (kinds) { for (const [kind, n] of kinds) this.#onEvent?.(kind, n); }
    if (group.entries > 0) committed = this.#commit(live, group);
    return refused ? this.#overQuota(live, refused) : committed;
  }

  /**
   * Stages a job envelope for its owner session and subscribers, commits it
   * with the job's history and record, then delivers it. A `job.result` or
   * `job.error` is the job's last. The envelope is serialized once; each
   * session splices in its own id, session id and seq.
   *
   * @param live the job
   * @param type the envelope type
   * @param payload what sessions get
   * @param owner the owner session (default: looked up by the job's session id)
   * @param logPayload what is logged instead, when `payload` holds a secret
   * @param extra more writes committed with it (the runtime log's entry of a terminal)
   * @returns resolves once committed and delivered (a failed commit is reported to the sessions)
   */
  emit(
    live: LiveJob,
    type: SeqType,
    payload: SeqPayload,
    owner: EventSink | undefined = this.#sinks(live.record.session_id),
    logPayload?: SeqPayload,
    extra?: KvWrite[],
  ): Promise<void> {
    // Nothing of a job follows its terminal (a tool settling late, a refusal).
    if (live.terminated) return Promise.resolve();
    // An input the runtime records is not the agent's output: no output quota applies.
    const output = type === "job.event" && !isInputEvent(payload);
    if (output) {
      // Nothing is staged for an event past a quota: the job ends instead.
      const refused = this.#quota.refusal(live);
      if (refused) return this.#overQuota(live, refused);
    } else if (type !== "job.event") {
      live.terminated = true;
      this.#quota.release(live);
    }
    if (type === "job.event") this.#onEvent?.((payload as JobEventPayload).kind, 1);
    const group = new Group();
    this.#stageRunning(live, owner, group);
    this.#stage(live, type, payload, owner, logPayload, output, group);
    return this.#commit(live, group, extra);
  }

  /** Stages one envelope for the owner, the job's history and every subscriber, into `group`. */
  #stage(
    live: LiveJob,
    type: SeqType,
    payload: SeqPayload,
    owner: EventSink | undefined,
    logPayload: SeqPayload | undefined,
    output: boolean,
    group: Group,
    payloadJson?: string,
    bodyJson?: string,
  ): void {
    const job = live.record;
    const envelope = jobEnvelope(type, job.job_id, job.trace_id, payload, logPayload, payloadJson);
    // An owner back from another node that fed it this job catches up first (in order).
    if (
      owner && !owner.evicted && !live.ownerQueue && !live.ownerInStep &&
      owner.fedFrom(job.job_id) > 0
    ) {
      this.catchUp(owner, live).catch((err) => owner.fault(err));
    }
    const catchingUp = live.ownerQueue !== undefined && owner !== undefined && !owner.evicted;
    if (catchingUp) live.ownerQueue!.push([type, logPayload ?? payload, job.log_length]);
    const ownerStaged = owner && !owner.evicted && !catchingUp
      ? group.stage(owner, envelope)
      : undefined;
    if (ownerStaged) job.last_event_seq = ownerStaged.seq;
    // The job's own history keeps every envelope, whatever the owner negotiated.
    const logged = ownerStaged?.logged ?? JSON.stringify(
      {
        type,
        job_id: job.job_id,
        trace_id: job.trace_id,
        event_seq: job.last_event_seq,
        payload: logPayload ?? payload,
      } satisfies HistoryEntry,
    );
    if (output) {
      // Everything in the logged text but the payload is ASCII when the ids
      // are (envelope ids are ULIDs, the rest JSON punctuation and numbers):
      // then only the payload's JSON, not the whole envelope, is scanned. A
      // JSON text holds no lone surrogate, so its parts' UTF-8 lengths add up.
      // An event's payload is its body's JSON inside ASCII but for its kind:
      // scanning the body's own text, flat as `JSON.stringify` made it, spares
      // flattening the payload's concatenated text for the scan.
      live.plainIds ??= isAscii(`${job.job_id}${job.trace_id}${job.session_id}`);
      const part = !live.plainIds
        ? undefined
        : bodyJson !== undefined && isAscii((payload as JobEventPayload).kind)
        ? bodyJson
        : payloadJson;
      this.#quota.charge(
        live,
        part === undefined ? utf8Length(logged) : logged.length - part.length + utf8Length(part),
      );
    }
    const position = job.log_length++;
    group.add(this.#store.jobLogWrites(job.job_id, position, logged), logged.length);
    if (live.subscribers.size === 0) return;
    for (const [id, sub] of live.subscribers) {
      if (sub.sink.evicted) live.subscribers.delete(id);
      else if (sub.queue) sub.queue.push([type, logPayload ?? payload, position]);
      else {
        sub.sink.markSubscribed(job.job_id, type === "job.event" ? position + 1 : undefined);
        group.stage(sub.sink, envelope);
      }
    }
  }

  /**
   * Forgets a job stopped without a terminal (its record was never
   * committed): its output quota and its wait to announce `running`.
   *
   * @param live the job
   */
  forget(live: LiveJob): void {
    live.terminated = true;
    this.#quota.release(live);
    this.#leaveRunningWait(live);
  }

  /**
   * Commits a group with the records of the sessions it staged to and of the
   * job (and `extra`), then delivers its envelopes in order. A job whose
   * record is not yet committed (an early start) puts a held record in front
   * of the group, so they commit as one; either way its envelopes are
   * delivered after its `job.accepted` (see `PendingRecord`), and never if
   * its record's commit failed.
   */
  #commit(live: LiveJob, group: Group, extra?: KvWrite[]): Promise<void> {
    const job = live.record;
    const pending = live.pendingRecord;
    // A held record carried by its job's terminal: this commit is the job's
    // first, and the terminal record it writes replaces the held one.
    const terminal = TERMINAL_STATUSES.has(job.status);
    const held = pending?.take(terminal);
    const writes = held ? [...held, ...group.writes] : group.writes;
    for (const sink of group.sinks) {
      const record = sink.logRecordWrite();
      if (record) writes.push(record);
    }
    writes.push(...this.#store.jobUpdateWrites({ ...job }, held !== undefined));
    if (extra) writes.push(...extra);
    const deliveries = group.deliveries;
    // Until the record is durable the job's writes fail fast, as its record's
    // do: a storage failure refuses them with it rather than committing them later.
    const write = this.#store.write(writes, {
      failFast: pending !== undefined,
      onDurable: held ? pending!.onDurable : undefined,
    });
    if (held) pending!.carriedBy(write);
    // The record commits in this commit or an earlier one, and its `job.accepted` goes out
    // as that commit settles: before this runs, so these deliveries need not wait for it.
    const anonymous = (err: unknown) => {
      // The client never heard of the job: the seqs its envelopes took are filled under another job id.
      const other = newJobId();
      for (const [sink, staged] of deliveries) sink.fault(err, [staged], other);
    };
    const committed = write.then(
      () => {
        // Its record refused alone (KV refused the record itself) while these landed.
        if (pending && !pending.durable) {
          return anonymous(new ArcpError("INTERNAL_ERROR", "the job's record was not stored"));
        }
        for (const [sink, staged] of deliveries) sink.deliver(staged);
      },
      (err) => {
        const fault = () => {
          this.#log.error("commit of a job envelope failed", {
            job_id: job.job_id,
            error: String(err),
          });
          for (const [sink, staged] of deliveries) sink.fault(err, [staged]);
        };
        if (!pending) return fault();
        // Whether the client heard of the job is its record's to say.
        return pending.committed.then(fault, () => anonymous(err));
      },
    );
    for (const sink of group.pressured) this.#signalBackPressure(sink);
    return committed;
  }

  /**
   * Subscribes a session to a job (same principal only). The session is
   * registered before this resolves, so nothing emitted afterwards is missed;
   * call `replay()` after sending `job.subscribed`.
   *
   * @param sink the subscribing session
   * @param jobId the job
   * @param options history replay
   * @returns the job and the replay step
   * @throws {ArcpError} `JOB_NOT_FOUND` or `PERMISSION_DENIED`
   */
  async subscribe(
    sink: EventSink,
    jobId: string,
    options: SubscribeOptions,
  ): Promise<Subscription> {
    const job = this.#live.get(jobId)?.record ?? await this.#store.getJob(jobId);
    if (!job) throw new ArcpError("JOB_NOT_FOUND", `no job ${jobId}`, { job_id: jobId });
    if (job.principal !== sink.principal) {
      throw new ArcpError(
        "PERMISSION_DENIED",
        "only the submitting principal may observe this job",
        {
          job_id: jobId,
        },
      );
    }
    const live = this.#live.get(jobId);
    if (!live && !TERMINAL_STATUSES.has(job.status) && job.session_id !== sink.sessionId) {
      // Running on another node: its history in KV is the feed, history and live alike.
      const snapshot = { ...job };
      sink.markSubscribed(jobId, options.history ? 0 : snapshot.log_length);
      return {
        job: snapshot,
        replay: () => {
          this.follow(sink, snapshot, {
            from: 0,
            owner: false,
            historyBelow: snapshot.log_length,
            history: options.history,
            fromEventSeq: options.fromEventSeq,
          });
          return Promise.resolve();
        },
      };
    }
    const sub: Subscriber = { sink, queue: [] };
    // History holds entries below this mark; everything later lands in the queue.
    let mark = Number.POSITIVE_INFINITY;
    const registered = live !== undefined && !live.ended && job.session_id !== sink.sessionId;
    if (registered) {
      live.subscribers.set(sink.sessionId, sub);
      mark = live.record.log_length;
      sink.markSubscribed(jobId, options.history ? 0 : mark);
    }
    const snapshot = { ...job };
    return {
      job: snapshot,
      replay: async () => {
        if (options.history) {
          await this.#replayHistory(sink, jobId, options.fromEventSeq, mark, 0, registered);
        }
        await this.#drainQueue(sink, snapshot, sub);
      },
    };
  }

  /**
   * Goes on feeding a session, just resumed on this node, a job it
   * subscribed to elsewhere, from the first history position its log lacks:
   * directly when the job runs here, else from KV. Each entry reaches it
   * once, in order.
   *
   * @param sink the session
   * @param jobId the job
   * @param from the first history position not yet delivered
   * @returns resolves once the feed is started
   */
  async resumeSubscription(sink: EventSink, jobId: string, from: number): Promise<void> {
    const live = this.#live.get(jobId);
    if (live && !live.ended) {
      if (live.subscribers.has(sink.sessionId)) return;
      const sub: Subscriber = { sink, queue: [] };
      live.subscribers.set(sink.sessionId, sub);
      const mark = live.record.log_length;
      const job = live.record;
      try {
        await this.#replayHistory(sink, jobId, -1, mark, from, true);
        await this.#drainQueue(sink, job, sub);
      } catch (err) {
        live.subscribers.delete(sink.sessionId);
        throw err;
      }
      return;
    }
    const job = await this.#store.getJob(jobId);
    if (!job) {
      sink.markSubscribed(jobId, undefined);
      return;
    }
    this.follow(sink, job, { from, owner: false });
  }

  /** Delivers a subscriber's queued envelopes until none are left, then feeds it directly. */
  async #drainQueue(
    sink: EventSink,
    job: { job_id: string; trace_id: string },
    sub: Subscriber,
  ): Promise<void> {
    // Drain until empty; new live envelopes keep queueing meanwhile, so order holds.
    const queue = sub.queue!;
    while (queue.length > 0) {
      const next = queue.splice(0, REPLAY_BATCH);
      await this.#deliverAll(sink, job, next.map(([t, p]) => [t, p]), {
        as: "subscriber",
        positions: next.map(([, , n]) => n),
      });
    }
    delete sub.queue;
  }

  /**
   * Stops delivering a job to a session.
   *
   * @param sessionId the subscribed session
   * @param jobId the job
   */
  unsubscribe(sessionId: string, jobId: string): void {
    this.#live.get(jobId)?.subscribers.delete(sessionId);
    this.#sinks(sessionId)?.markSubscribed(jobId, undefined);
    this.#follows.get(sessionId)?.get(jobId)?.abort();
  }

  /**
   * Forgets a session that left memory.
   *
   * @param sessionId the session
   */
  dropSession(sessionId: string): void {
    for (const live of this.#live.values()) {
      live.subscribers.delete(sessionId);
      // Should it come back, it catches up on what another node fed it meanwhile.
      if (live.record.session_id === sessionId) live.ownerInStep = false;
    }
    for (const follow of this.#follows.get(sessionId)?.values() ?? []) follow.abort();
  }

  /** Stops every feed from KV and every wait to announce `running` (shutdown). */
  stopFollowing(): void {
    clearTimeout(this.#runningTimer);
    this.#runningTimer = undefined;
    this.#runningWaits.clear();
    for (const byJob of this.#follows.values()) for (const f of byJob.values()) f.abort();
  }

  /**
   * Feeds a session a job that runs on another node, from the job's history
   * in KV, in order and each entry once, until its terminal envelope. KV
   * Connect's watch wakes the feed; on a local file it polls with back-off.
   * A second call for the same session and job while one runs does nothing.
   *
   * @param sink the session
   * @param job the job (id and trace id)
   * @param options where to start and what to skip
   */
  follow(sink: EventSink, job: { job_id: string; trace_id: string }, options: FollowOptions): void {
    const byJob = this.#follows.get(sink.sessionId) ?? new Map<string, AbortController>();
    if (byJob.has(job.job_id)) return;
    this.#follows.set(sink.sessionId, byJob);
    const stop = new AbortController();
    byJob.set(job.job_id, stop);
    this.#feed(sink, job, options, stop.signal).catch((err) => {
      this.#log.error("feeding a job from another node failed", {
        job_id: job.job_id,
        session_id: sink.sessionId,
        error: String(err),
      });
      sink.fault(err);
    }).finally(() => {
      byJob.delete(job.job_id);
      if (byJob.size === 0 && this.#follows.get(sink.sessionId) === byJob) {
        this.#follows.delete(sink.sessionId);
      }
    });
  }

  /**
   * Brings a session back in step with a job running here that another node
   * fed it while it was away: the history from where that node stopped is
   * delivered first, then what the job emitted meanwhile, and then the
   * session is fed directly again. A job it was never fed elsewhere needs nothing.
   *
   * @param sink the session, now held here
   * @param live the job, live here and owned by the session
   * @returns resolves once caught up
   */
  async catchUp(sink: EventSink, live: LiveJob): Promise<void> {
    const from = sink.fedFrom(live.record.job_id);
    if (from === 0 || live.ownerQueue || live.ownerInStep) return;
    // Set before the first await: envelopes emitted from now on queue behind the catch-up.
    const queue: Array<[SeqType, SeqPayload, number]> = live.ownerQueue = [];
    const mark = live.record.log_length;
    const job = live.record;
    try {
      const items: Array<[SeqType, SeqPayload, number]> = [];
      for await (const [n, text] of this.#store.jobLogAfter(job.job_id, from - 1)) {
        if (n >= mark) break;
        const env = JSON.parse(text) as HistoryEntry & { session_id?: string };
        if (env.session_id === sink.sessionId) continue;
        items.push([env.type, env.payload, n]);
      }
      // Everything before `mark` was committed before this ran (the history above);
      // later envelopes queue meanwhile and are drained in order.
      let batch = items;
      while (batch.length > 0 && !sink.evicted) {
        await this.#deliverAll(sink, job, batch.map(([t, p]) => [t, p]), {
          as: "owner",
          positions: batch.map(([, , n]) => n),
        });
        batch = queue.splice(0, REPLAY_BATCH);
      }
      while (queue.length > 0 && !sink.evicted) {
        const next = queue.splice(0, REPLAY_BATCH);
        await this.#deliverAll(sink, job, next.map(([t, p]) => [t, p]), {
          as: "owner",
          positions: next.map(([, , n]) => n),
        });
      }
      live.ownerInStep = !sink.evicted;
    } finally {
      live.ownerQueue = undefined;
    }
  }

  async #feed(
    sink: EventSink,
    job: { job_id: string; trace_id: string },
    options: FollowOptions,
    signal: AbortSignal,
  ): Promise<void> {
    const jobId = job.job_id;
    let next = options.owner ? Math.max(options.from, sink.fedFrom(jobId)) : options.from;
    for await (const _ of this.#store.followJob(jobId, signal)) {
      let ended = false;
      const items: Array<[SeqType, SeqPayload, number]> = [];
      for await (const [n, text] of this.#store.jobLogAfter(jobId, next - 1)) {
        next = n + 1;
        const env = JSON.parse(text) as HistoryEntry & { session_id?: string };
        if (env.type !== "job.event") ended = true;
        // Already in the owner's log: the running node staged it to this session.
        if (options.owner && env.session_id === sink.sessionId) continue;
        if (!options.owner && n < (options.historyBelow ?? 0)) {
          if (!options.history || (env.event_seq ?? 0) <= (options.fromEventSeq ?? 0)) continue;
        }
        items.push([env.type, env.payload, n]);
      }
      if (signal.aborted || sink.evicted) return;
      if (items.length > 0) {
        await this.#deliverAll(sink, job, items.map(([type, payload]) => [type, payload]), {
          as: options.owner ? "owner" : "subscriber",
          positions: items.map(([, , n]) => n),
          ended,
        });
      }
      if (ended) return;
      // Gone or ended without a terminal in the history left (swept): nothing more will come.
      const record = await this.#store.getJob(jobId);
      if (!record || (TERMINAL_STATUSES.has(record.status) && record.log_length <= next)) return;
    }
  }

  /**
   * Replays a job's history from position `fromPos` up to `mark`, skipping
   * entries whose owner-session seq is at most `fromSeq`; with `track`, the
   * subscriber's record keeps how far it got.
   */
  async #replayHistory(
    sink: EventSink,
    jobId: string,
    fromSeq: number,
    mark: number,
    fromPos: number,
    track: boolean,
  ): Promise<void> {
    // Everything emitted before this point must be in KV before we read it.
    await this.#store.write([]);
    let batch: Array<[SeqType, SeqPayload]> = [];
    let positions: number[] = [];
    let traceId = "";
    const flush = async () => {
      await this.#deliverAll(
        sink,
        { job_id: jobId, trace_id: traceId },
        batch,
        track ? { as: "subscriber", positions } : undefined,
      );
      batch = [];
      positions = [];
    };
    for await (const [n, text] of this.#store.jobLog(jobId, fromPos - 1)) {
      if (n >= mark) break;
      const env = JSON.parse(text) as HistoryEntry;
      if ((env.event_seq ?? 0) <= fromSeq) continue;
      traceId = env.trace_id ?? traceId;
      batch.push([env.type, env.payload]);
      positions.push(n);
      if (batch.length === REPLAY_BATCH) await flush();
    }
    if (batch.length > 0) await flush();
  }

  /**
   * Stamps envelopes for one session, commits them in size-bounded groups,
   * and delivers each group in order once it is durable.
   */
  async #deliverAll(
    sink: EventSink,
    job: { job_id: string; trace_id: string },
    items: Array<[SeqType, SeqPayload]>,
    track?: { as: "owner" | "subscriber"; positions: number[]; ended?: boolean },
  ): Promise<void> {
    let group: Staged[] = [];
    let chars = 0;
    const flush = async () => {
      if (group.length === 0) return;
      const ready = group;
      group = [];
      chars = 0;
      try {
        await this.#store.write(ready.flatMap((st) => st.writes));
        for (const st of ready) sink.deliver(st);
      } catch (err) {
        sink.fault(err, ready);
      }
    };
    for (const [i, [type, payload]] of items.entries()) {
      // A session handed to another node is that node's to write.
      if (sink.evicted) break;
      // Fed positions ride in the session record each staged envelope commits.
      if (track?.as === "owner") {
        const last = track.ended && i === items.length - 1;
        sink.markFed(job.job_id, last ? undefined : track.positions[i] + 1);
      } else if (track) {
        sink.markSubscribed(job.job_id, type === "job.event" ? track.positions[i] + 1 : undefined);
      }
      const st = sink.stage(jobEnvelope(type, job.job_id, job.trace_id, payload));
      if (!st) continue;
      group.push(st);
      chars += st.text.length;
      if (chars > REPLAY_GROUP_CHARS) await flush();
    }
    await flush();
  }

  /** Tells every live job feeding a lagging session that it is falling behind. */
  #signalBackPressure(sink: EventSink): void {
    for (const live of this.#live.values()) {
      if (live.ended) continue;
      if (live.record.session_id === sink.sessionId || live.subscribers.has(sink.sessionId)) {
        this.event(live, "status", {
          phase: "back_pressure",
          message: "a session reading this job is falling behind",
        });
      }
    }
  }
}
