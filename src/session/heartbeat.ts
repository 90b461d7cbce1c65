/**
 * Session heartbeats (feature `heartbeat`). Reference clients only answer
 * pings, so the runtime pings whenever a whole interval has passed without
 * hearing from the client, however busy the outbound stream is, and declares
 * the connection lost after two silent intervals.
 *
 * Every heartbeat of one interval is looked at by one shared timer, a
 * quarter interval apart: a timer per session cost an idle session a timer
 * object and its closures, for a check that is the same for all of them.
 *
 * @module
 */

/** What the heartbeat does when it fires. */
export interface HeartbeatActions {
  /** Send a `session.ping`. */
  ping(): void;
  /** Two intervals passed in silence: report `HEARTBEAT_LOST` and close. */
  lost(): void;
}

/** The heartbeats of one interval, and the timer that checks them. */
interface Round {
  timer: ReturnType<typeof setInterval>;
  members: Set<Heartbeat>;
}

/** One round per interval in use (in practice, the runtime's one interval). */
const rounds = new Map<number, Round>();

/** Watches one connection's inbound silence. */
export class Heartbeat {
  #intervalMs: number;
  #actions: HeartbeatActions;
  #lastHeard = Date.now();
  #lastPing = 0;

  /**
   * Starts watching.
   *
   * @param intervalMs the negotiated interval
   * @param actions what to do on silence
   */
  constructor(intervalMs: number, actions: HeartbeatActions) {
    this.#intervalMs = intervalMs;
    this.#actions = actions;
    let round = rounds.get(intervalMs);
    if (!round) {
      const members = new Set<Heartbeat>();
      const timer = setInterval(() => {
        const now = Date.now();
        for (const heartbeat of members) heartbeat.#tick(now);
      }, Math.max(50, Math.floor(intervalMs / 4)));
      round = { timer, members };
      rounds.set(intervalMs, round);
    }
    round.members.add(this);
  }

  /** How many shared timers run now: one per interval in use, none once every heartbeat stopped. */
  static get timers(): number {
    return rounds.size;
  }

  /** Something arrived from the client. */
  heard(): void {
    this.#lastHeard = Date.now();
  }

  /** Stops watching. */
  stop(): void {
    const round = rounds.get(this.#intervalMs);
    if (!round?.members.delete(this) || round.members.size > 0) return;
    // The last one out stops the timer, so nothing keeps the process alive.
    clearInterval(round.timer);
    rounds.delete(this.#intervalMs);
  }

  #tick(now: number): void {
    const silent = now - this.#lastHeard;
    if (silent >= 2 * this.#intervalMs) {
      this.stop();
      this.#actions.lost();
    } else if (silent >= this.#intervalMs && now - this.#lastPing >= this.#intervalMs) {
      this.#lastPing = now;
      this.#actions.ping();
    }
  }
}
