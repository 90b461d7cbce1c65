/**
 * The sessions this process holds in memory: creation, resume (token check,
 * window check, rotation), the per-principal cap on connected sessions, and
 * eviction of sessions whose resume window has closed.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import type { Feature } from "../protocol/features.ts";
import { newSecret, newSessionId, sha256Hex, timingSafeEqual } from "../protocol/ids.ts";
import { nowIso } from "../protocol/time.ts";
import type { SessionRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import { Session, type SessionPolicy } from "./session.ts";
import { SessionEvents } from "./operator_events.ts";
import { silentLogger } from "../logger.ts";

/** When this process started; sessions it finds attached in KV were orphaned then. */
const PROCESS_START_MS = Date.now();

/** Tunables of the session layer. */
export interface SessionLimits {
  /** Connected sessions one principal may have. */
  maxSessionsPerPrincipal: number;
  /** Resume window (seconds). */
  resumeWindowSec: number;
  /** How long a new connection may go without sending `session.hello` (seconds). */
  helloTimeoutSec: number;
}

/** Defaults of {@linkcode SessionLimits}. */
export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxSessionsPerPrincipal: 100,
  resumeWindowSec: 600,
  helloTimeoutSec: 10,
};

/** Defaults of {@linkcode SessionPolicy}; the runtime keeps the log TTL at least the resume window. */
export const DEFAULT_SESSION_POLICY: SessionPolicy = {
  logTtlMs: 24 * 3600 * 1000,
  maxBufferedBytes: 1024 * 1024,
  stallTimeoutMs: 30_000,
  backPressureLag: 1000,
};

/** Default heartbeat interval (seconds) when a client negotiates `heartbeat`. */
export const DEFAULT_HEARTBEAT_SEC = 30;

/** A resume request, as the hello carries it. */
export interface ResumeRequest {
  /** The session to resume. */
  session_id: string;
  /** Its latest resume token. */
  resume_token: string;
  /** The client has every envelope up to this seq. */
  last_event_seq: number;
}

/** This runtime as a node among those sharing the KV, as sessions need it. */
export interface SessionNode {
  /** This node run: the holder written into the records of sessions held here. */
  readonly run: string;
  /**
   * Whether a node run is alive (its lease holds).
   *
   * @param run the node run
   * @returns true while alive
   */
  isRunAlive(run: string): Promise<boolean>;
}

/** How long a resume waits for a live node to let go of the session (ms). */
const HANDOVER_WAIT_MS = 15_000;

/** Holds sessions. */
export class SessionRegistry {
  #store: Store;
  #policy: SessionPolicy;
  #limits: SessionLimits;
  #events: SessionEvents;
  #sessions = new Map<string, Session>();
  #evictTimers = new Map<string, ReturnType<typeof setTimeout>>();
  /** Set by {@linkcode close}: a socket that closes after it schedules nothing. */
  #closed = false;
  /** Hellos past the cap check and not yet attached, per principal. */
  #pending = new Map<string, number>();
  /** Called when a session leaves memory (jobs stop feeding it). */
  onEvict: ((session: Session) => void) | undefined;
  /**
   * The node this runtime is, once it joined: sessions are then held by one
   * node at a time, taken with an atomic check and handed over on request.
   */
  node: SessionNode | undefined;
  /** Called when a new session is created (the runtime's event log). */
  onOpen: ((session: Session) => void) | undefined;

  /**
   * @param store where sessions are kept
   * @param limits tunables
   * @param policy retention and pacing
   * @param events where sessions report operator events (dropped when omitted)
   */
  constructor(
    store: Store,
    limits: SessionLimits,
    policy: SessionPolicy,
    events: SessionEvents = new SessionEvents(silentLogger()),
  ) {
    this.#store = store;
    this.#limits = limits;
    this.#policy = policy;
    this.#events = events;
  }

  /**
   * A session in memory.
   *
   * @param sessionId the id
   * @returns the session, if held
   */
  get(sessionId: string): Session | undefined {
    return this.#sessions.get(sessionId);
  }

  /**
   * Every session in memory.
   *
   * @returns them
   */
  all(): IterableIterator<Session> {
    return this.#sessions.values();
  }

  /** How many sessions are held in memory. */
  get size(): number {
    return this.#sessions.size;
  }

  /** The resume window in seconds. */
  get resumeWindowSec(): number {
    return this.#limits.resumeWindowSec;
  }

  #hold(session: Session): Session {
    if (this.node) session.record.node_run = this.node.run;
    this.#sessions.set(session.sessionId, session);
    session.onDetach = () => this.#scheduleEviction(session);
    // An attached session needs no timer: its detach schedules one. Kept,
    // every connected session held a timer, its closure and a map entry for
    // the whole resume window (about 0.4 KiB of each idle session).
    session.onAttach = () => this.#cancelEviction(session);
    if (!session.connected) this.#scheduleEviction(session);
    return session;
  }

  #cancelEviction(session: Session): void {
    clearTimeout(this.#evictTimers.get(session.sessionId));
    this.#evictTimers.delete(session.sessionId);
  }

  #scheduleEviction(session: Session): void {
    if (this.#closed) return;
    clearTimeout(this.#evictTimers.get(session.sessionId));
    const detachedAt = session.record.detached_at ?? Date.now();
    const left = detachedAt + this.#limits.resumeWindowSec * 1000 - Date.now();
    const timer = setTimeout(() => {
      if (this.#evictTimers.get(session.sessionId) === timer) {
        this.#evictTimers.delete(session.sessionId);
      }
      if (!session.connected && !session.evicted) this.#evict(session);
    }, Math.max(0, left));
    // Housekeeping: a detached session waiting out its resume window must
    // not keep a process that embeds the runtime from exiting.
    Deno.unrefTimer(timer);
    this.#evictTimers.set(session.sessionId, timer);
  }

  /** Drops a session from memory; jobs stop feeding it. */
  #evict(session: Session): void {
    session.evicted = true;
    if (this.#sessions.get(session.sessionId) === session) {
      this.#sessions.delete(session.sessionId);
      this.#cancelEviction(session);
    }
    this.onEvict?.(session);
  }

  /**
   * Loads a session from KV into memory (after a restart, or one first
   * opened on another node). With nodes, the session is taken for this node
   * with an atomic check on its record; a live node holding it is asked to
   * let go and waited for, so its log never has two writers.
   *
   * @param sessionId the id
   * @param wait whether to wait for a live holder to let go (false: leave it there)
   * @returns the session, or undefined when KV no longer has it (or, without `wait`, another live node holds it)
   * @throws {ArcpError} `INTERNAL_ERROR` (retryable) when the live holder does not let go in time
   */
  async restore(sessionId: string, wait = true): Promise<Session | undefined> {
    const held = this.#sessions.get(sessionId);
    if (held) return held;
    const record = await this.#take(sessionId, wait);
    if (!record) return undefined;
    // Commits of log entries leave the record's last_seq behind the log's tail.
    const logged = await this.#store.lastLoggedSeq(sessionId);
    if (this.#sessions.has(sessionId)) return this.#sessions.get(sessionId);
    record.last_seq = Math.max(record.last_seq, logged);
    // A session whose process died while attached counts as detached from
    // its last write or this process's start, whichever is later (as the sweeper does).
    record.detached_at ??= Math.max(record.updated_at ?? 0, PROCESS_START_MS);
    return this.#hold(new Session(record, this.#store, this.#policy, this.#events));
  }

  /** Reads a session's record and, with nodes, makes this node its holder. */
  async #take(sessionId: string, wait: boolean): Promise<SessionRecord | undefined> {
    const node = this.node;
    const deadline = Date.now() + HANDOVER_WAIT_MS;
    let asked = false;
    let pause = 10;
    try {
      for (;;) {
        const record = await this.#store.getSession(sessionId);
        if (!record || !node || record.node_run === node.run) return record ?? undefined;
        const holder = record.node_run;
        if (holder !== undefined && await node.isRunAlive(holder)) {
          if (!wait) return undefined;
          if (Date.now() > deadline) {
            throw new ArcpError(
              "INTERNAL_ERROR",
              "the session is held by another node that did not let go of it; retry",
            );
          }
          if (!asked) {
            asked = true;
            await this.#store.nodes.requestHandover(sessionId, { to: node.run, at: Date.now() });
          }
          await new Promise((r) => setTimeout(r, pause));
          pause = Math.min(pause * 2, 200);
          continue;
        }
        const taken = await this.#store.takeSession(
          sessionId,
          holder,
          node.run,
          this.#policy.logTtlMs,
        );
        if (taken) return taken;
      }
    } finally {
      if (asked) await this.#store.nodes.dropHandover(sessionId).catch(() => {});
    }
  }

  /**
   * Lets go of a session another node resumes: drops it from memory (its
   * connection closed, jobs stop feeding it), waits until everything staged
   * to it is durable, then names the new holder in its record.
   *
   * @param sessionId the session
   * @param to the node run taking it
   * @returns resolves once the record names `to`
   */
  async release(sessionId: string, to: string): Promise<void> {
    const session = this.#sessions.get(sessionId);
    if (session) {
      this.#evict(session);
      session.disconnect(1000, "session resumed on another node");
    }
    await this.#store.write([]);
    if (this.node) {
      await this.#store.takeSession(sessionId, this.node.run, to, this.#policy.logTtlMs);
    }
  }

  /**
   * Takes one of a principal's connected-session slots for a hello being
   * handled, so concurrent hellos cannot all pass the cap before any
   * attaches. Call it before the first await; release once the session is
   * attached or refused.
   *
   * @param principal who is connecting
   * @param caps `limit`: its cap, when it is not the default; `group`: a cap
   *   on the connected sessions of every principal with a prefix together
   *   (anonymous principals; `details.cap` is `<name>_sessions`); `resuming`: the session a resume names, which
   *   counts against neither, since its new connection replaces its old one
   * @returns the release
   * @throws {ArcpError} `INTERNAL_ERROR` with `details.cap` when connected and pending sessions fill a cap
   */
  reserve(
    principal: string,
    caps: {
      limit?: number;
      group?: { name: string; prefix: string; limit: number };
      resuming?: string;
    } = {},
  ): () => void {
    const limit = caps.limit ?? this.#limits.maxSessionsPerPrincipal;
    const group = caps.group;
    let n = this.#pending.get(principal) ?? 0;
    let inGroup = 0;
    if (group) {
      for (const [p, k] of this.#pending) if (p.startsWith(group.prefix)) inGroup += k;
    }
    for (const s of this.#sessions.values()) {
      if (!s.connected || s.sessionId === caps.resuming) continue;
      if (s.principal === principal) n++;
      if (group && s.principal.startsWith(group.prefix)) inGroup++;
    }
    if (n >= limit) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `principal has ${n} connected sessions, the most allowed`,
        { cap: "sessions", limit },
      );
    }
    if (group && inGroup >= group.limit) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `${inGroup} ${group.name} sessions are connected, the most allowed together`,
        { cap: `${group.name}_sessions`, limit: group.limit },
      );
    }
    this.#pending.set(principal, (this.#pending.get(principal) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#pending.get(principal) ?? 1) - 1;
      if (left > 0) this.#pending.set(principal, left);
      else this.#pending.delete(principal);
    };
  }

  /**
   * Creates a session and commits its record.
   *
   * @param principal its principal
   * @param features negotiated features
   * @returns the session and its first resume token
   * @throws {ArcpError} `INTERNAL_ERROR` with `details.storage` while storage fails
   */
  async create(
    principal: string,
    features: Feature[],
  ): Promise<{ session: Session; resumeToken: string }> {
    const resumeToken = newSecret("rt_");
    const session = new Session(
      {
        session_id: newSessionId(),
        principal,
        created_at: nowIso(),
        last_seq: 0,
        acked_seq: 0,
        floor_seq: 0,
        resume_token_hash: await sha256Hex(resumeToken),
        features,
      },
      this.#store,
      this.#policy,
      this.#events,
    );
    if (this.node) session.record.node_run = this.node.run;
    // Nothing depends on a session not yet welcomed: while storage fails the
    // hello is refused at once rather than held until the disk has room.
    await this.#store.write([session.recordWrite()], { failFast: true });
    this.onOpen?.(session);
    return { session: this.#hold(session), resumeToken };
  }

  /**
   * Checks a resume request and rotates the session's token. Every refusal
   * is the same `RESUME_WINDOW_EXPIRED`, so a guesser learns nothing about
   * which check failed.
   *
   * @param principal the authenticated principal
   * @param resume the request
   * @returns the session and its new resume token
   * @throws {ArcpError} `RESUME_WINDOW_EXPIRED`
   */
  async resume(
    principal: string,
    resume: ResumeRequest,
  ): Promise<{ session: Session; resumeToken: string }> {
    const refuse = () =>
      new ArcpError(
        "RESUME_WINDOW_EXPIRED",
        "session cannot be resumed: unknown, expired, or token not current",
      );
    const presented = await sha256Hex(resume.resume_token);
    if (!this.#sessions.has(resume.session_id)) {
      // The token is checked before the session is taken from another node:
      // a resume that would be refused never moves a session.
      const stored = await this.#store.getSession(resume.session_id);
      if (!stored || !timingSafeEqual(presented, stored.resume_token_hash)) throw refuse();
    }
    const session = await this.restore(resume.session_id);
    if (!session) throw refuse();
    const tokenOk = timingSafeEqual(presented, session.record.resume_token_hash);
    const detachedAt = session.record.detached_at;
    const inWindow = detachedAt === undefined ||
      Date.now() - detachedAt <= this.#limits.resumeWindowSec * 1000;
    const covered = resume.last_event_seq >= (session.record.floor_seq ?? 0) &&
      resume.last_event_seq <= session.record.last_seq;
    if (!tokenOk || session.principal !== principal || !inWindow || !covered || session.evicted) {
      throw refuse();
    }
    const resumeToken = newSecret("rt_");
    session.record.resume_token_hash = await sha256Hex(resumeToken);
    this.#cancelEviction(session);
    return { session, resumeToken };
  }

  /** Stops eviction timers (shutdown). */
  close(): void {
    this.#closed = true;
    for (const t of this.#evictTimers.values()) clearTimeout(t);
    this.#evictTimers.clear();
  }
}
