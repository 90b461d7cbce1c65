/**
 * The jobs live in this process, by id, with a count per principal that
 * admission checks against its cap.
 *
 * @module
 */
import type { LiveJob } from "./live_job.ts";

/** Live jobs by id, counted per principal. */
export class JobTable {
  #byId = new Map<string, LiveJob>();
  #perPrincipal = new Map<string, number>();
  /** Slots taken by submits still being admitted (they await the store). */
  #reserved = new Map<string, number>();

  /** How many jobs are live. */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * A live job.
   *
   * @param jobId the job
   * @returns it, or undefined when it is not live here
   */
  get(jobId: string): LiveJob | undefined {
    return this.#byId.get(jobId);
  }

  /**
   * Every live job.
   *
   * @returns them, in the order they went live
   */
  values(): IterableIterator<LiveJob> {
    return this.#byId.values();
  }

  /**
   * How many live jobs a principal has.
   *
   * @param principal the principal
   * @returns the count
   */
  countFor(principal: string): number {
    return this.#perPrincipal.get(principal) ?? 0;
  }

  /**
   * Takes one of a principal's slots for a submit being admitted, so
   * concurrent submits cannot all pass the cap before any goes live. Call
   * it before the first await; release once the job is live or refused.
   *
   * @param principal the principal
   * @param limit its cap on live jobs
   * @returns the release, or undefined when live and reserved jobs fill the cap
   */
  tryReserve(principal: string, limit: number): (() => void) | undefined {
    const reserved = this.#reserved.get(principal) ?? 0;
    if (this.countFor(principal) + reserved >= limit) return undefined;
    this.#reserved.set(principal, reserved + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#reserved.get(principal) ?? 1) - 1;
      if (left > 0) this.#reserved.set(principal, left);
      else this.#reserved.delete(principal);
    };
  }

  /**
   * Makes a job live.
   *
   * @param live the job
   * @param reservation the slot {@linkcode tryReserve} took for it: released
   *   in the same step, so the job never counts twice nor not at all
   */
  add(live: LiveJob, reservation?: () => void): void {
    const { job_id: jobId, principal } = live.record;
    this.#byId.set(jobId, live);
    this.#perPrincipal.set(principal, this.countFor(principal) + 1);
    reservation?.();
  }

  /**
   * Forgets a job that ended.
   *
   * @param live the job
   * @returns whether it was live
   */
  delete(live: LiveJob): boolean {
    const { job_id: jobId, principal } = live.record;
    if (!this.#byId.delete(jobId)) return false;
    const left = this.countFor(principal) - 1;
    if (left > 0) this.#perPrincipal.set(principal, left);
    else this.#perPrincipal.delete(principal);
    return true;
  }

  /** Forgets every job (process shutdown). */
  clear(): void {
    this.#byId.clear();
    this.#perPrincipal.clear();
  }
}
