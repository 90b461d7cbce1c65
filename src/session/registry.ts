/**
 * The sessions this process holds in memory, with the per-principal cap on
 * connected sessions.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { newSecret, newSessionId, sha256Hex } from "../protocol/ids.ts";
import { nowIso } from "../protocol/time.ts";
import type { Store } from "../store/store.ts";
import { type Retention, Session } from "./session.ts";

/** Tunables of the session layer. */
export interface SessionLimits {
  /** Connected sessions one principal may have. */
  maxSessionsPerPrincipal: number;
  /** Resume window (seconds). */
  resumeWindowSec: number;
}

/** Defaults of {@linkcode SessionLimits}. */
export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxSessionsPerPrincipal: 100,
  resumeWindowSec: 600,
};

/** Holds sessions. */
export class SessionRegistry {
  #store: Store;
  #retention: Retention;
  #limits: SessionLimits;
  #sessions = new Map<string, Session>();

  /**
   * @param store where sessions are kept
   * @param limits tunables
   * @param retention how long records and logs are kept
   */
  constructor(store: Store, limits: SessionLimits, retention: Retention) {
    this.#store = store;
    this.#limits = limits;
    this.#retention = retention;
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

  /**
   * Loads a session from KV into memory (after a restart).
   *
   * @param sessionId the id
   * @returns the session, or undefined when KV no longer has it
   */
  async restore(sessionId: string): Promise<Session | undefined> {
    const held = this.#sessions.get(sessionId);
    if (held) return held;
    const record = await this.#store.getSession(sessionId);
    if (!record) return undefined;
    const session = new Session(record, this.#store, this.#retention);
    this.#sessions.set(sessionId, session);
    return session;
  }

  /**
   * Checks the per-principal cap on connected sessions.
   *
   * @param principal who is connecting
   * @throws {ArcpError} `INTERNAL_ERROR` with `details.cap` when at the cap
   */
  checkCap(principal: string): void {
    let n = 0;
    for (const s of this.#sessions.values()) if (s.connected && s.principal === principal) n++;
    if (n >= this.#limits.maxSessionsPerPrincipal) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `principal has ${n} connected sessions, the most allowed`,
        {
          cap: "sessions",
          limit: this.#limits.maxSessionsPerPrincipal,
        },
      );
    }
  }

  /**
   * Creates a session and commits its record.
   *
   * @param principal its principal
   * @param features negotiated features
   * @returns the session and its first resume token
   */
  async create(
    principal: string,
    features: string[],
  ): Promise<{ session: Session; resumeToken: string }> {
    const resumeToken = newSecret("rt_");
    const session = new Session(
      {
        session_id: newSessionId(),
        principal,
        created_at: nowIso(),
        last_seq: 0,
        acked_seq: 0,
        resume_token_hash: await sha256Hex(resumeToken),
        features,
      },
      this.#store,
      this.#retention,
    );
    await this.#store.write([session.recordWrite()]);
    this.#sessions.set(session.sessionId, session);
    return { session, resumeToken };
  }

  /** The resume window in seconds. */
  get resumeWindowSec(): number {
    return this.#limits.resumeWindowSec;
  }
}
