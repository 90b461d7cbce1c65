/**
 * Draining: the runtime stops taking jobs and lets the running ones finish
 * before it stops. Submits are refused at once with a retryable
 * `INTERNAL_ERROR` (`details.cap: "draining"`); jobs still running at the
 * deadline end with a retryable `INTERNAL_ERROR` (`details.cap:
 * "drain_deadline"`), their sessions told, before the drain is finished.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import type { JobManager } from "./job_manager.ts";

/** Where a drain stands. */
export type DrainState = "serving" | "draining" | "drained";

/** A drain's state as the management API reports it. */
export interface DrainStatus {
  /** Where it stands. */
  state: DrainState;
  /** When jobs still running are ended, RFC 3339, while draining or once drained. */
  deadline?: string;
}

/** Seconds running jobs get to finish by default. */
export const DEFAULT_DRAIN_SEC = 30;

/** What a drain reports. */
export interface DrainEvents {
  /** The drain began. */
  started(deadline: string, liveJobs: number): void;
  /** It finished; `ended` jobs were ended at the deadline. */
  finished(ended: number): void;
}

/**
 * The refusal a submit gets while the runtime drains.
 *
 * @returns the error
 */
export function drainingRefusal(): ArcpError {
  return new ArcpError(
    "INTERNAL_ERROR",
    "the runtime is draining and accepts no new jobs; retry on another runtime or after it restarts",
    { cap: "draining" },
  );
}

/** Drains a runtime's jobs, once. */
export class Drain {
  #jobs: JobManager;
  #events: DrainEvents;
  #state: DrainState = "serving";
  #deadline: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #finishing: Promise<void> | undefined;
  #done!: () => void;
  /** Settles once the drain has finished: no job is live. */
  readonly finished: Promise<void>;

  /**
   * @param jobs the jobs to drain
   * @param events where the start and finish are reported
   */
  constructor(jobs: JobManager, events: DrainEvents) {
    this.#jobs = jobs;
    this.#events = events;
    this.finished = new Promise((resolve) => (this.#done = resolve));
  }

  /** Where the drain stands. */
  get status(): DrainStatus {
    return { state: this.#state, ...(this.#deadline ? { deadline: this.#deadline } : {}) };
  }

  /**
   * Starts draining: submits are refused from now on, and jobs still live
   * after `deadlineSec` are ended. Starting again changes nothing.
   *
   * @param deadlineSec how long running jobs get to finish
   * @returns the drain's status
   */
  start(deadlineSec: number = DEFAULT_DRAIN_SEC): DrainStatus {
    if (this.#state !== "serving") return this.status;
    this.#state = "draining";
    this.#deadline = new Date(Date.now() + deadlineSec * 1000).toISOString();
    this.#jobs.refuseSubmits(drainingRefusal);
    this.#events.started(this.#deadline, this.#jobs.liveCount);
    this.#timer = setTimeout(() => void this.now(), deadlineSec * 1000);
    this.jobEnded();
    return this.status;
  }

  /** A job ended: the drain finishes once none is live. */
  jobEnded(): void {
    if (this.#state === "draining" && this.#jobs.idle) void this.#finish(0);
  }

  /**
   * Ends the drain now: jobs still live end with a retryable
   * `INTERNAL_ERROR`, each session told. For the deadline and for an
   * operator who will not wait (a second signal).
   *
   * @returns resolves once the drain has finished
   */
  now(): Promise<void> {
    if (this.#state === "serving") this.start(0);
    if (this.#finishing) return this.#finishing;
    const live = this.#jobs.liveCount;
    return this.#finish(
      live,
      this.#jobs.endAll(
        new ArcpError(
          "INTERNAL_ERROR",
          "the runtime drained before this job finished; submit it again",
          { cap: "drain_deadline" },
        ),
      ),
    );
  }

  #finish(ended: number, ending: Promise<void> = Promise.resolve()): Promise<void> {
    this.#finishing ??= (async () => {
      clearTimeout(this.#timer);
      await ending;
      this.#state = "drained";
      this.#events.finished(ended);
      this.#done();
    })();
    return this.#finishing;
  }

  /** Stops the deadline timer (the runtime closes without finishing the drain). */
  close(): void {
    clearTimeout(this.#timer);
  }
}
