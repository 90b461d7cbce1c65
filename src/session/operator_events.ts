/**
 * What the session layer tells operators: each event below is exactly one
 * log line (ids and reason, never a token) and one counter increment, so a
 * line in the log and a step in `/metrics` always go together.
 *
 * | event | log line | counter |
 * | --- | --- | --- |
 * | a hello refused for its credential (reason: an `AuthFailure` or `resume_refused`) | `hello rejected` (warn, with the refusal's message) | `arcp_hellos_rejected_total{reason}` |
 * | … and held in the tarpit first | `hello rejected` with `throttled_ms` | also `arcp_hellos_throttled_total` |
 * | a socket closed with 1008 | `connection closed by policy (1008)` (warn) | `arcp_policy_closes_total{reason}` |
 * | a session's connection lost without a bye | `session dropped` (warn) | `arcp_sessions_dropped_total{reason}` |
 *
 * @module
 */
import type { Logger } from "../logger.ts";
import { type Counter, Metrics } from "../metrics.ts";
import { AUTH_FAILURES, type AuthFailure } from "./auth.ts";

/** Why a hello's credential was refused: an authentication failure, or a refused resume. */
export type HelloRejection = AuthFailure | "resume_refused";

/** Why the runtime closed a socket with 1008 (policy violation). */
export type PolicyClose = "slow_reader" | "hello_timeout";

/** Why a session lost its connection without a bye. */
export type DropReason = "heartbeat_lost" | "socket_gone";

/** The session an event is about, as it is logged. */
export interface SessionRef {
  /** The session id. */
  readonly sessionId: string;
  /** Its principal. */
  readonly principal: string;
}

/** Logs and counts the session layer's operator events. */
export class SessionEvents {
  #log: Logger;
  #rejected: Counter;
  #throttled: Counter;
  #policy: Counter;
  #dropped: Counter;

  /**
   * Declares the counters in a registry.
   *
   * @param log where the lines go
   * @param metrics where the counters live (a private registry when omitted)
   */
  constructor(log: Logger, metrics: Metrics = new Metrics()) {
    this.#log = log;
    this.#rejected = metrics.counter(
      "arcp_hellos_rejected_total",
      "Hellos refused for their credential (bad token, expired or invalid JWT, resume refused).",
      ["reason"],
    );
    this.#throttled = metrics.counter(
      "arcp_hellos_throttled_total",
      "Refused hellos whose answer the failed-hello tarpit held back.",
    );
    this.#policy = metrics.counter(
      "arcp_policy_closes_total",
      "Sockets the runtime closed with 1008 (a client that stopped reading, no hello in time).",
      ["reason"],
    );
    this.#dropped = metrics.counter(
      "arcp_sessions_dropped_total",
      "Sessions whose connection was lost without a bye (they stay resumable).",
      ["reason"],
    );
    for (const reason of [...AUTH_FAILURES, "resume_refused"]) this.#rejected.inc({ reason }, 0);
    this.#throttled.inc({}, 0);
    for (const reason of ["slow_reader", "hello_timeout"]) this.#policy.inc({ reason }, 0);
    for (const reason of ["heartbeat_lost", "socket_gone"]) this.#dropped.inc({ reason }, 0);
  }

  /**
   * A hello refused for its credential, once its answer is due.
   *
   * @param reason what was wrong with it
   * @param addr the peer's address
   * @param heldMs how long the tarpit held the answer (0: not throttled)
   * @param sessionId the session a refused resume named
   * @param message what the client was told (it never quotes the token)
   */
  helloRejected(
    reason: HelloRejection,
    addr: string,
    heldMs: number,
    sessionId?: string,
    message?: string,
  ): void {
    this.#rejected.inc({ reason });
    if (heldMs > 0) this.#throttled.inc();
    this.#log.warn("hello rejected", {
      reason,
      addr,
      ...(message === undefined ? {} : { message }),
      ...(sessionId === undefined ? {} : { session_id: sessionId }),
      ...(heldMs > 0 ? { throttled_ms: heldMs } : {}),
    });
  }

  /**
   * The runtime closed a socket with 1008.
   *
   * @param reason which policy
   * @param addr the peer's address
   * @param session the session it carried, if any
   * @param detail what was measured (queued bytes, the timeout)
   */
  policyClose(
    reason: PolicyClose,
    addr: string,
    session?: SessionRef,
    detail: Record<string, number> = {},
  ): void {
    this.#policy.inc({ reason });
    this.#log.warn("connection closed by policy (1008)", {
      reason,
      addr,
      ...(session ? { session_id: session.sessionId, principal: session.principal } : {}),
      ...detail,
    });
  }

  /**
   * A session's connection was lost without a bye; the session stays
   * resumable and its jobs run on.
   *
   * @param reason how it was lost
   * @param addr the peer's address
   * @param session the session
   */
  sessionDropped(reason: DropReason, addr: string, session: SessionRef): void {
    this.#dropped.inc({ reason });
    this.#log.warn("session dropped", {
      reason,
      addr,
      session_id: session.sessionId,
      principal: session.principal,
    });
  }
}
