/**
 * Recent demand for workers, per worker key: how many warm workers of each
 * key the pool should hold ready. A key is everything fixed when a worker
 * starts (the agent module, the exact Deno permission set, the egress globs,
 * and the principal for shared workers), so a worker started ahead for a key
 * can only ever serve a job with the identical key.
 *
 * @module
 */
import type { LaunchSpec } from "./channel.ts";

/** What a worker is started with, and so what a job must match to use it. */
export type WorkerTemplate = Pick<LaunchSpec, "agentUrl" | "permissions" | "egress">;

/**
 * The key of the worker a job needs. Permissions are compared as the exact
 * JSON the worker starts with, so two leases that grant the same access in
 * different words still get different workers: never the other way round.
 *
 * @param spec the job's launch
 * @param ofPrincipal whether the key names the principal: always for shared
 *   workers and for processes that already served one of its jobs; a worker
 *   started ahead has run no job, so it may serve any principal's
 * @returns the key
 */
export function workerKey(spec: LaunchSpec, ofPrincipal = spec.sharing !== undefined): string {
  return JSON.stringify([
    ofPrincipal ? spec.principal : "",
    spec.agentUrl,
    spec.permissions,
    spec.egress,
  ]);
}

/**
 * The principal a worker key names.
 *
 * @param key a key from {@linkcode workerKey}
 * @returns the principal, or "" for a key that names none
 */
export function principalOf(key: string): string {
  return (JSON.parse(key) as [string])[0];
}

/** How far back demand counts (ms). */
const WINDOW_MS = 5_000;

/** A key with no launch for this long wants no warm workers (ms). */
const FORGET_MS = 60_000;

/**
 * The shortest span launches count as one burst in (ms): launches of one
 * burst arrive spread out when each of them starts a worker on the same
 * thread, faster than a worker is ready.
 */
const BURST_SPAN_MS = 250;

/**
 * How long a key's largest burst keeps calling for warm workers after it
 * (ms): a burst of jobs on a busy host may take longer than the demand
 * window to get through, and the pool refills once they have. Warm workers
 * beyond the rate's are trimmed after it.
 */
const BURST_HOLD_MS = 20_000;

/** Failed warm starts in a row after which a key is started on demand only. */
const MAX_WARM_FAILURES = 2;

interface KeyDemand {
  template: WorkerTemplate;
  /** Launch times within the window, oldest first. */
  times: number[];
  last: number;
  /** The largest burst since `burstAt` (launches), and when it came. */
  burst: number;
  burstAt: number;
  warmFailures: number;
}

/** Launch rates per worker key, and the warm workers they call for. */
export class WarmDemand {
  #keys = new Map<string, KeyDemand>();
  /** Smoothed time a warm worker takes to become ready (ms). */
  #readyMs = 100;
  #bursts: boolean;

  /**
   * Demand for warm workers.
   *
   * @param options `bursts`: whether a key's largest recent burst calls for
   *   warm workers too, beside its rate (default false). The process
   *   sandbox leaves it off: processes that served a burst come back to the
   *   pool for their principal's next one, and warm processes started for
   *   it on top cost more than they saved (figure 12e, 4 alternating pairs:
   *   runtime CPU per event 38 – 45 µs with it, 27 – 37 µs without).
   */
  constructor(options: { bursts?: boolean } = {}) {
    this.#bursts = options.bursts ?? false;
  }

  /**
   * Counts one launch.
   *
   * @param key the worker key
   * @param template what such a worker starts with
   * @param now the time (ms)
   */
  note(key: string, template: WorkerTemplate, now: number): void {
    const d = this.#keys.get(key) ??
      { template, times: [], last: 0, burst: 0, burstAt: 0, warmFailures: 0 };
    d.times.push(now);
    while (d.times.length > 0 && d.times[0] < now - WINDOW_MS) d.times.shift();
    d.last = now;
    const span = Math.min(WINDOW_MS, Math.max(BURST_SPAN_MS, this.#readyMs));
    let first = d.times.length - 1;
    while (first > 0 && d.times[first - 1] >= now - span) first--;
    const burst = d.times.length - first;
    if (burst >= d.burst || now - d.burstAt > BURST_HOLD_MS) {
      d.burst = burst;
      d.burstAt = now;
    }
    this.#keys.set(key, d);
  }

  /**
   * Records how long a warm worker took to become ready, to size the pool.
   *
   * @param ms spawn → ready
   */
  readyTook(ms: number): void {
    this.#readyMs = 0.8 * this.#readyMs + 0.2 * ms;
  }

  /**
   * Records that a warm worker of a key died before serving (its module
   * throws at import, say): after a few, the key is no longer started ahead.
   *
   * @param key the worker key
   */
  warmFailed(key: string): void {
    const d = this.#keys.get(key);
    if (d) d.warmFailures++;
  }

  /**
   * Records that a worker of a key served a job.
   *
   * @param key the worker key
   */
  served(key: string): void {
    const d = this.#keys.get(key);
    if (d) d.warmFailures = 0;
  }

  /**
   * Warm workers wanted per key: enough to cover the launches expected while
   * one becomes ready (twice over), and, with `bursts`, the key's largest recent burst (the
   * most launches that came within one ready time of each other, or
   * {@linkcode BURST_SPAN_MS}: a refill cannot serve those, only workers
   * started before them) for {@linkcode BURST_HOLD_MS} after it; at least
   * one for a key used in the last minute, none for a key that keeps
   * failing. Keys long unused are forgotten.
   *
   * @param now the time (ms)
   * @param max the most warm workers in all
   * @returns key → wanted count, most wanted first
   */
  wanted(now: number, max: number): Array<{ key: string; template: WorkerTemplate; n: number }> {
    const out = [];
    for (const [key, d] of this.#keys) {
      if (now - d.last > FORGET_MS) {
        this.#keys.delete(key);
        continue;
      }
      if (d.warmFailures >= MAX_WARM_FAILURES) continue;
      while (d.times.length > 0 && d.times[0] < now - WINDOW_MS) d.times.shift();
      const rate = d.times.length / (WINDOW_MS / 1000);
      out.push({
        key,
        template: d.template,
        n: Math.max(
          1,
          Math.ceil(rate * this.#readyMs / 500),
          this.#bursts && now - d.burstAt <= BURST_HOLD_MS ? d.burst : 0,
        ),
      });
    }
    out.sort((a, b) => b.n - a.n);
    let left = max;
    for (const w of out) {
      w.n = Math.min(w.n, left);
      left -= w.n;
    }
    return out.filter((w) => w.n > 0);
  }
}
