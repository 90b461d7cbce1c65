/**
 * The inner wall: every operation an agent asks the runtime for is checked
 * against the job's exact lease globs (on canonical targets), then its
 * expiry, then its budget, before it runs.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { matchesAny } from "./glob.ts";
import type { Lease } from "../protocol/lease.ts";
import { canonicalPath, canonicalUrl } from "./canonical.ts";
import { protectedContaining, type ProtectedPath } from "./protected_path.ts";

/** What the guard asks of the job's budget. */
export interface BudgetState {
  /** A currency whose counter is at or below zero, if any. */
  exhaustedCurrency(): string | undefined;
}

/** Options of {@linkcode LeaseGuard}. */
export interface LeaseGuardOptions {
  /** A lease without `model.use` forbids every model (default true). */
  requireModelLease: boolean;
  /** Paths no lease reaches (the runtime's own state and code), in every form they go by. */
  protectedPaths?: readonly ProtectedPath[];
}

/**
 * Turns a target into the form its namespace's globs are written against.
 *
 * @param ns the namespace
 * @param target what the agent named
 * @returns the canonical target
 * @throws {ArcpError} `PERMISSION_DENIED` when the target cannot be canonicalized
 */
async function canonical(ns: string, target: string): Promise<string> {
  if (ns === "fs.read" || ns === "fs.write") return await canonicalPath(target);
  if (ns === "net.fetch") return canonicalUrl(target);
  return target;
}

/** Checks one job's operations. */
export class LeaseGuard {
  #lease: Lease;
  #expiresMs: number | undefined;
  #budget: BudgetState | undefined;
  #options: LeaseGuardOptions;

  /**
   * @param lease the effective lease
   * @param expiresMs `lease_constraints.expires_at` in epoch ms
   * @param budget the job's budget counters, when it has a budget
   * @param options policy
   */
  constructor(
    lease: Lease,
    expiresMs: number | undefined,
    budget: BudgetState | undefined,
    options: LeaseGuardOptions = { requireModelLease: true },
  ) {
    this.#lease = lease;
    this.#expiresMs = expiresMs;
    this.#budget = budget;
    this.#options = options;
  }

  /**
   * Checks an operation: glob, then expiry, then budget.
   *
   * @param ns the capability namespace
   * @param target the path, URL, tool, agent or model
   * @returns the canonical target the operation must use
   * @throws {ArcpError} `PERMISSION_DENIED`, `LEASE_EXPIRED` or `BUDGET_EXHAUSTED`
   */
  async check(ns: string, target: string): Promise<string> {
    if (typeof target !== "string" || target.length === 0 || target.length > 4096) {
      throw new ArcpError(
        "PERMISSION_DENIED",
        `${ns}: target must be a non-empty string of at most 4096 characters`,
      );
    }
    const canon = await canonical(ns, target);
    // Refusals name the target as the agent gave it: the canonical form of a
    // path that resolves outside the lease is where a symlink points, which
    // the agent may not learn.
    const named = JSON.stringify(target.slice(0, 300));
    const shielded = (ns === "fs.read" || ns === "fs.write")
      ? protectedContaining(canon, ns, this.#options.protectedPaths ?? [])
      : undefined;
    if (shielded) {
      throw new ArcpError(
        "PERMISSION_DENIED",
        `${named} is protected (${shielded.reason}); no ${ns} lease reaches it`,
      );
    }
    // The namespace is the agent's word: only the lease's own keys count, so
    // "constructor" or "__proto__" never reach Object.prototype.
    const patterns = Object.hasOwn(this.#lease, ns) ? this.#lease[ns] : undefined;
    const modelsOpen = ns === "model.use" && patterns === undefined &&
      !this.#options.requireModelLease;
    if (!modelsOpen && (patterns === undefined || !matchesAny(patterns, canon))) {
      const resolved = canon === target ? "" : " (it resolves outside what the lease grants)";
      throw new ArcpError(
        "PERMISSION_DENIED",
        `lease does not grant ${ns} for ${named}${resolved}`,
      );
    }
    this.checkLive();
    return canon;
  }

  /**
   * Checks expiry and budget alone (for operations without a target).
   *
   * @throws {ArcpError} `LEASE_EXPIRED` or `BUDGET_EXHAUSTED`
   */
  checkLive(): void {
    if (this.#expiresMs !== undefined && Date.now() >= this.#expiresMs) {
      throw new ArcpError(
        "LEASE_EXPIRED",
        `lease expired at ${new Date(this.#expiresMs).toISOString()}`,
      );
    }
    const currency = this.#budget?.exhaustedCurrency();
    if (currency !== undefined) {
      throw new ArcpError("BUDGET_EXHAUSTED", `budget exhausted in ${currency}`);
    }
  }
}
