/**
 * Delegation lease subsetting (ARCP.md §5.7): a child lease may only narrow
 * its parent's.
 *
 * What "narrower" means here:
 *
 * - Every pattern of every child namespace is covered by some parent pattern
 *   of the same namespace ({@linkcode globCovers}, exact), so a namespace the
 *   parent lacks cannot appear in the child (an empty list is allowed: it
 *   grants nothing). `model.use` is one such namespace.
 * - `cost.budget` is not a glob: the child's amount per currency (amounts of
 *   one currency add up) must not exceed the parent's remaining counter, and
 *   a currency the parent has no counter for is refused. A parent currency
 *   the child leaves out is inherited at the parent's remaining amount
 *   (never below zero), just as `expires_at` is: a child without a budget
 *   would otherwise have more spending authority than its parent.
 * - The child's `expires_at` must not be later than the parent's; omitted,
 *   it is the parent's.
 *
 * The caller still checks what is not about the parent, such as the child's
 * `expires_at` being in the future (§5.3).
 *
 * @module
 */
import { type Amount, type Decimal, formatDecimal, parseAmount } from "./decimal.ts";
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import { type CoversBudget, globCovers } from "./glob.ts";
import type { Lease } from "../protocol/lease.ts";
import { parseUtc } from "../protocol/time.ts";

/**
 * Automaton steps one subset check may spend on glob inclusion in total, so
 * that 64 × 64 adversarial patterns cannot stall the runtime; past it,
 * patterns count as not covered.
 */
const SUBSET_STEPS = 1_000_000;

const BUDGET = "cost.budget";
const EXPIRES_AT = "lease_constraints.expires_at";

/** The child lease is a subset; what it is in force with. */
export interface LeaseSubsetOk {
  /** Always true. */
  ok: true;
  /** The child's effective lease: its own, plus inherited `cost.budget` amounts. */
  lease: Lease;
  /** The child's initial budget counters, or undefined when it has no budget. */
  budget: Record<string, Decimal> | undefined;
  /** The child's effective `expires_at` (its own, else the parent's), or undefined. */
  expiresAt: string | undefined;
}

/** The child lease asks for more than its parent has. */
export interface LeaseSubsetViolation {
  /** Always false. */
  ok: false;
  /** The offending namespace, or `lease_constraints.expires_at`. */
  namespace: string;
  /** The offending pattern, amount or timestamp. */
  pattern?: string;
  /** `LEASE_SUBSET_VIOLATION`, ready for the parent's `tool_result`. */
  error: ArcpError;
}

/** The outcome of {@linkcode checkLeaseSubset}. */
export type LeaseSubsetResult = LeaseSubsetOk | LeaseSubsetViolation;

function violation(
  namespace: string,
  pattern: string | undefined,
  message: string,
): LeaseSubsetViolation {
  const details: Record<string, unknown> = { namespace };
  if (pattern !== undefined) details.pattern = pattern;
  return {
    ok: false,
    namespace,
    pattern,
    error: new ArcpError("LEASE_SUBSET_VIOLATION", message, details),
  };
}

function amountOrError(text: string): Amount | ArcpError {
  try {
    return parseAmount(text);
  } catch (err) {
    return toArcpError(err);
  }
}

/**
 * Checks that a delegated lease is a subset of its parent's, and works out
 * the child's effective lease, budget and expiry.
 *
 * @param parentLease the parent job's effective lease
 * @param parentRemainingBudget the parent's live counters per currency, or
 *   undefined when the parent has no budget
 * @param parentExpiresAt the parent's effective `expires_at` (RFC 3339 UTC), if any
 * @param childLease the lease the delegate event requests
 * @param childExpiresAt the `expires_at` the delegate event requests, if any
 * @returns the effective child lease, or the first violation found
 * @example
 * ```ts
 * import { checkLeaseSubset } from "./subset.ts";
 * const r = checkLeaseSubset(
 *   { "fs.read": ["/srv/**"], "cost.budget": ["USD:5.00"] },
 *   { USD: 2_000000000000000000n },
 *   "2030-01-01T00:00:00Z",
 *   { "fs.read": ["/srv/data/*.csv"] },
 *   undefined,
 * );
 * // r.ok === true; r.lease["cost.budget"] is ["USD:2"]; r.expiresAt is the parent's
 * ```
 */
export function checkLeaseSubset(
  parentLease: Lease,
  parentRemainingBudget: Readonly<Record<string, Decimal>> | undefined,
  parentExpiresAt: string | undefined,
  childLease: Lease,
  childExpiresAt: string | undefined,
): LeaseSubsetResult {
  const steps: CoversBudget = { steps: SUBSET_STEPS };
  // Own keys only: a currency or namespace named `constructor` must not
  // find something on Object.prototype.
  const parentBudget = new Map(Object.entries(parentRemainingBudget ?? {}));
  const childBudget = new Map<string, Decimal>();
  for (const [ns, patterns] of Object.entries(childLease)) {
    if (patterns.length === 0) continue;
    if (ns === BUDGET) {
      for (const text of patterns) {
        const parsed = amountOrError(text);
        if (parsed instanceof ArcpError) return violation(BUDGET, text, parsed.message);
        const { currency, amount } = parsed;
        const remaining = parentBudget.get(currency);
        if (remaining === undefined) {
          return violation(BUDGET, text, `the parent lease has no ${currency} budget`);
        }
        const total = (childBudget.get(currency) ?? 0n) + amount;
        if (total > remaining) {
          return violation(
            BUDGET,
            text,
            `${currency}:${formatDecimal(total)} exceeds the parent's remaining ` +
              `${currency}:${formatDecimal(remaining)}`,
          );
        }
        childBudget.set(currency, total);
      }
      continue;
    }
    if (!Object.hasOwn(parentLease, ns)) {
      return violation(ns, patterns[0], `namespace ${ns} is not in the parent lease`);
    }
    for (const pattern of patterns) {
      if (!parentLease[ns].some((p) => globCovers(p, pattern, steps))) {
        return violation(
          ns,
          pattern,
          `${ns} pattern ${pattern} is not covered by the parent lease`,
        );
      }
    }
  }

  const lease: Lease = { ...childLease };
  const inherited: string[] = [];
  for (const [currency, remaining] of parentBudget) {
    if (childBudget.has(currency)) continue;
    const amount = remaining > 0n ? remaining : 0n;
    childBudget.set(currency, amount);
    inherited.push(`${currency}:${formatDecimal(amount)}`);
  }
  if (inherited.length > 0) lease[BUDGET] = [...(childLease[BUDGET] ?? []), ...inherited];
  const budget = childBudget.size > 0 ? Object.fromEntries(childBudget) : undefined;

  const parentMs = parentExpiresAt === undefined ? undefined : parseUtc(parentExpiresAt);
  if (parentExpiresAt !== undefined && parentMs === undefined) {
    return violation(EXPIRES_AT, parentExpiresAt, "the parent's expires_at is not RFC 3339 UTC");
  }
  if (childExpiresAt === undefined) return { ok: true, lease, budget, expiresAt: parentExpiresAt };
  const childMs = parseUtc(childExpiresAt);
  if (childMs === undefined) {
    return violation(EXPIRES_AT, childExpiresAt, "expires_at must be RFC 3339 UTC");
  }
  if (parentMs !== undefined && childMs > parentMs) {
    return violation(
      EXPIRES_AT,
      childExpiresAt,
      `expires_at ${childExpiresAt} is later than the parent's ${parentExpiresAt}`,
    );
  }
  return { ok: true, lease, budget, expiresAt: childExpiresAt };
}
