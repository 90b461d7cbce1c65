/**
 * Session heartbeats (feature `heartbeat`). Reference clients only answer
 * pings, so the runtime pings whenever a whole interval has passed without
 * hearing from the client, however busy the outbound stream is, and declares
 * the connection lost after two silent intervals.
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

/** Watches one connection's inbound silence. */
export class Heartbeat {
  #intervalMs: number;
  #actions: HeartbeatActions;
  #lastHeard = Date.now();
  #lastPing = 0;
  #timer: ReturnType<typeof setInterval>;

  /**
   * Starts watching.
   *
   * @param intervalMs the negotiated interval
   * @param actions what to do on silence
   */
  constructor(intervalMs: number, actions: HeartbeatActions) {
    this.#intervalMs = intervalMs;
    this.#actions = actions;
    this.#timer = setInterval(() => this.#tick(), Math.max(50, Math.floor(intervalMs / 4)));
  }

  /** Something arrived from the client. */
  heard(): void {
    this.#lastHeard = Date.now();
  }

  /** Stops watching. */
  stop(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    const now = Date.now();
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
