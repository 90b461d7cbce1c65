/**
 * Initial budget counters from a lease's `cost.budget` amounts.
 *
 * @module
 */
import { AMOUNT, type Lease } from "../protocol/lease.ts";

/**
 * The starting counters, one per currency (amounts of one currency add up).
 *
 * @param lease the effective lease
 * @returns currency → amount, or undefined when the lease has no budget
 */
export function initialBudget(lease: Lease): Record<string, number> | undefined {
  const amounts = lease["cost.budget"];
  if (!amounts || amounts.length === 0) return undefined;
  const out: Record<string, number> = {};
  for (const amount of amounts) {
    const m = AMOUNT.exec(amount);
    if (m) out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  }
  return out;
}
