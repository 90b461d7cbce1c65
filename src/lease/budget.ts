/**
 * A job's budget: one exact-decimal counter per currency of its lease's
 * `cost.budget`, decremented by `cost.*` metrics in that currency.
 *
 * @module
 */
import type { Lease } from "../protocol/lease.ts";
import {
  atLeastPercent,
  type Decimal,
  decimalFromNumber,
  decimalToNumber,
  formatDecimal,
  isExhausted,
  parseAmount,
  parseDecimal,
} from "./decimal.ts";

/** A decrement worth telling the client about: `cost.budget.remaining`. */
export interface RemainingReport {
  /** The currency. */
  currency: string;
  /** What is left, as a number for the wire. */
  value: number;
}

/** Share of the initial budget that makes a decrement "material" (ARCP.md §5.4). */
const MATERIAL_PERCENT = 5;

/** The counters of one job. */
export class BudgetCounters {
  #initial = new Map<string, Decimal>();
  #remaining = new Map<string, Decimal>();
  /** Spent since the last `cost.budget.remaining` report, per currency. */
  #unreported = new Map<string, Decimal>();

  /**
   * @param initial currency → starting amount
   * @param remaining currency → amount left (as stored), when restoring
   */
  constructor(initial: Map<string, Decimal>, remaining?: Record<string, string>) {
    for (const [currency, amount] of initial) {
      this.#initial.set(currency, amount);
      this.#remaining.set(
        currency,
        remaining && Object.hasOwn(remaining, currency)
          ? parseDecimal(remaining[currency])
          : amount,
      );
      this.#unreported.set(currency, 0n);
    }
  }

  /**
   * The counters a lease starts with; amounts of one currency add up.
   *
   * @param lease the effective lease
   * @param remaining stored remaining amounts, when restoring a job
   * @returns the counters, or undefined when the lease has no budget
   */
  static fromLease(lease: Lease, remaining?: Record<string, string>): BudgetCounters | undefined {
    const amounts = lease["cost.budget"];
    if (!amounts || amounts.length === 0) return undefined;
    const initial = new Map<string, Decimal>();
    for (const text of amounts) {
      const { currency, amount } = parseAmount(text);
      initial.set(currency, (initial.get(currency) ?? 0n) + amount);
    }
    return new BudgetCounters(initial, remaining);
  }

  /**
   * A currency whose counter is at or below zero.
   *
   * @returns the currency, or undefined while every counter is positive
   */
  exhaustedCurrency(): string | undefined {
    for (const [currency, left] of this.#remaining) if (isExhausted(left)) return currency;
    return undefined;
  }

  /**
   * Applies a metric: `cost.*` in a budgeted currency decrements it;
   * negative values are ignored.
   *
   * @param name metric name
   * @param value metric value
   * @param unit metric unit
   * @returns a report to emit when the decrement was material or emptied the counter
   */
  applyMetric(name: string, value: number, unit: string | undefined): RemainingReport | undefined {
    if (!name.startsWith("cost.") || unit === undefined || !(value > 0)) return undefined;
    const left = this.#remaining.get(unit);
    if (left === undefined) return undefined;
    const spent = decimalFromNumber(value);
    const now = left - spent;
    this.#remaining.set(unit, now);
    const unreported = this.#unreported.get(unit)! + spent;
    if (
      isExhausted(now) || atLeastPercent(unreported, this.#initial.get(unit)!, MATERIAL_PERCENT)
    ) {
      this.#unreported.set(unit, 0n);
      return { currency: unit, value: decimalToNumber(now) };
    }
    this.#unreported.set(unit, unreported);
    return undefined;
  }

  /**
   * Empties every counter that is still positive: the upstream that
   * enforces this budget (a provisioned credential's gateway) refused for
   * budget, so nothing more can be spent through it.
   *
   * @returns a report per counter that was emptied
   */
  exhaust(): RemainingReport[] {
    const reports: RemainingReport[] = [];
    for (const [currency, left] of this.#remaining) {
      if (isExhausted(left)) continue;
      this.#remaining.set(currency, 0n);
      this.#unreported.set(currency, 0n);
      reports.push({ currency, value: 0 });
    }
    return reports;
  }

  /**
   * Current counters for the wire.
   *
   * @returns currency → number
   */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.#remaining].map(([c, v]) => [c, decimalToNumber(v)]));
  }

  /**
   * Initial counters for the wire (`job.accepted.budget`).
   *
   * @returns currency → number
   */
  initial(): Record<string, number> {
    return Object.fromEntries([...this.#initial].map(([c, v]) => [c, decimalToNumber(v)]));
  }

  /**
   * Remaining amounts exactly, for storage.
   *
   * @returns currency → decimal string
   */
  toStored(): Record<string, string> {
    return Object.fromEntries([...this.#remaining].map(([c, v]) => [c, formatDecimal(v)]));
  }

  /**
   * Remaining amounts exactly, per currency.
   *
   * @returns currency → amount
   */
  remainingAll(): Record<string, Decimal> {
    return Object.fromEntries(this.#remaining);
  }

  /**
   * Remaining amount of one currency, exactly.
   *
   * @param currency the currency
   * @returns the amount, or undefined when not budgeted
   */
  remaining(currency: string): Decimal | undefined {
    return this.#remaining.get(currency);
  }
}
