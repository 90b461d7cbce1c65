/**
 * Quotas on what jobs write to their logs: events and bytes per job, and
 * per principal across that principal's live jobs. A job that would commit
 * past a quota ends with `INTERNAL_ERROR` naming it, before the disk fills.
 *
 * Only live jobs count toward a principal: a finished job's history is
 * bounded by retention (`jobHistoryTtlMs`) instead. Counting it would lock a
 * principal out for the whole retention window after one large job, and
 * would need counters persisted across restarts and decremented by the
 * sweeper.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import type { JobLimits } from "./limits.ts";
import type { LiveJob } from "./live_job.ts";

/** What a job (or a principal's live jobs) has committed. */
export interface OutputCount {
  /** `job.event`s committed. */
  events: number;
  /** Their bytes, as logged (UTF-8). */
  bytes: number;
}

type QuotaLimits = Pick<
  JobLimits,
  "maxEventsPerJob" | "maxLogBytesPerJob" | "maxEventsPerPrincipal" | "maxLogBytesPerPrincipal"
>;

function over(cap: string, what: string, limit: number): ArcpError {
  return new ArcpError("INTERNAL_ERROR", `job exceeded the ${what} quota (${limit})`, {
    cap,
    limit,
  });
}

/** Counts committed events and refuses the ones past a quota. */
export class OutputQuota {
  #limits: QuotaLimits;
  #perPrincipal = new Map<string, OutputCount>();

  /**
   * @param limits the four quotas
   */
  constructor(limits: QuotaLimits) {
    this.#limits = limits;
  }

  /**
   * Checks one more event of a job against the quotas. The event count is
   * exact; bytes are checked on what is already committed, so a log ends at
   * most one event (capped at 256 KiB, or a 1 MiB result chunk) past its byte quota.
   *
   * @param live the job
   * @returns the error that ends the job, or undefined when the event may go
   */
  refusal(live: LiveJob): ArcpError | undefined {
    const l = this.#limits;
    const job = live.output;
    const all = this.#perPrincipal.get(live.record.principal) ?? { events: 0, bytes: 0 };
    if (job.events >= l.maxEventsPerJob) {
      return over("job_events", "per-job event", l.maxEventsPerJob);
    }
    if (job.bytes >= l.maxLogBytesPerJob) {
      return over("job_log_bytes", "per-job log byte", l.maxLogBytesPerJob);
    }
    if (all.events >= l.maxEventsPerPrincipal) {
      return over("principal_events", "per-principal event", l.maxEventsPerPrincipal);
    }
    if (all.bytes >= l.maxLogBytesPerPrincipal) {
      return over("principal_log_bytes", "per-principal log byte", l.maxLogBytesPerPrincipal);
    }
    return undefined;
  }

  /**
   * Counts an event a job commits.
   *
   * @param live the job
   * @param bytes the event's size as logged
   */
  charge(live: LiveJob, bytes: number): void {
    live.output.events++;
    live.output.bytes += bytes;
    const principal = live.record.principal;
    const all = this.#perPrincipal.get(principal) ?? { events: 0, bytes: 0 };
    all.events++;
    all.bytes += bytes;
    this.#perPrincipal.set(principal, all);
  }

  /**
   * Takes an ended job out of its principal's totals.
   *
   * @param live the job
   */
  release(live: LiveJob): void {
    const principal = live.record.principal;
    const all = this.#perPrincipal.get(principal);
    if (!all) return;
    all.events -= live.output.events;
    all.bytes -= live.output.bytes;
    if (all.events <= 0) this.#perPrincipal.delete(principal);
  }
}
