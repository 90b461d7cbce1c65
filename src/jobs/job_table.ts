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
   * Makes a job live.
   *
   * @param live the job
   */
  add(live: LiveJob): void {
    const { job_id: jobId, principal } = live.record;
    this.#byId.set(jobId, live);
    this.#perPrincipal.set(principal, this.countFor(principal) + 1);
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
