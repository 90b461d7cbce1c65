/**
 * Exact decimal arithmetic for budget counters (ARCP.md §5.4).
 *
 * A {@linkcode Decimal} is a `bigint` counting units of 10^-18, so `+`, `-`,
 * `<`, `<=` and `===` on it are exact: ten decrements of `0.1` take `1.00`
 * to exactly zero. Values arrive as amount strings (`"USD:5.00"`) or as
 * metric numbers, which are read through their shortest decimal form
 * (`String(n)`), i.e. the decimal the sender most likely wrote. Digits past
 * the 18th decimal place are rounded away from zero, so a reported cost is
 * never under-counted.
 *
 * @example
 * ```ts
 * import { decimalFromNumber, decimalToNumber, isExhausted, parseAmount } from "./decimal.ts";
 * let { amount } = parseAmount("USD:1.00");
 * for (let i = 0; i < 10; i++) amount -= decimalFromNumber(0.1);
 * isExhausted(amount); // true: exactly 0
 * decimalToNumber(amount); // 0
 * ```
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { AMOUNT } from "../protocol/lease.ts";

/** An exact amount: a `bigint` counting units of 10^-18. */
export type Decimal = bigint;

/** Decimal places a {@linkcode Decimal} keeps. */
export const DECIMAL_PLACES = 18;

const SCALE = 10n ** BigInt(DECIMAL_PLACES);
const DECIMAL_TEXT = /^(-)?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;
/** Past this exponent a value cannot come from a finite double; refusing it bounds the work. */
const MAX_EXPONENT = 400;

/**
 * Parses a decimal string: digits, an optional fraction and an optional
 * exponent (`"1.00"`, `"-0.5"`, `"1e-7"`, `"1.5e+21"`).
 *
 * @param text the decimal
 * @returns the exact amount, rounded away from zero past 18 places
 * @throws {ArcpError} `INVALID_REQUEST` when the text is not a decimal
 * @example
 * ```ts
 * import { parseDecimal } from "./decimal.ts";
 * parseDecimal("1.00"); // 1000000000000000000n
 * ```
 */
export function parseDecimal(text: string): Decimal {
  const m = DECIMAL_TEXT.exec(text);
  const exponent = m ? Number(m[4] ?? 0) : NaN;
  if (!m || !(Math.abs(exponent) <= MAX_EXPONENT)) {
    throw new ArcpError("INVALID_REQUEST", `not a decimal number: ${text.slice(0, 64)}`);
  }
  const [, sign, whole, fraction = ""] = m;
  const digits = BigInt(whole + fraction);
  const shift = DECIMAL_PLACES + exponent - fraction.length;
  let units: bigint;
  if (shift >= 0) {
    units = digits * 10n ** BigInt(shift);
  } else {
    const divisor = 10n ** BigInt(-shift);
    units = digits / divisor + (digits % divisor === 0n ? 0n : 1n);
  }
  return sign ? -units : units;
}

/**
 * Reads a metric number exactly as its shortest decimal string.
 *
 * @param value a finite number, e.g. a metric's `value`
 * @returns the exact amount
 * @throws {ArcpError} `INVALID_REQUEST` for NaN or an infinity
 * @example
 * ```ts
 * import { decimalFromNumber } from "./decimal.ts";
 * decimalFromNumber(0.1); // 100000000000000000n, not 0.1000000000000000055...
 * ```
 */
export function decimalFromNumber(value: number): Decimal {
  if (!Number.isFinite(value)) {
    throw new ArcpError("INVALID_REQUEST", `not a finite number: ${value}`);
  }
  return parseDecimal(String(value));
}

/**
 * The shortest decimal string of an amount.
 *
 * @param value the amount
 * @returns e.g. `"1.5"`, `"-0.25"`, `"0"`
 */
export function formatDecimal(value: Decimal): string {
  const sign = value < 0n ? "-" : "";
  const abs = value < 0n ? -value : value;
  const whole = (abs / SCALE).toString();
  const fraction = (abs % SCALE).toString().padStart(DECIMAL_PLACES, "0").replace(/0+$/, "");
  return fraction ? `${sign}${whole}.${fraction}` : `${sign}${whole}`;
}

/**
 * The amount as a JS number for the wire (`job.accepted.budget`,
 * `cost.budget.remaining`): the double nearest to the exact value.
 *
 * @param value the amount
 * @returns the nearest number
 */
export function decimalToNumber(value: Decimal): number {
  return Number(formatDecimal(value));
}

/**
 * Whether a budget counter is spent: at or below zero, operations through
 * the lease fail with `BUDGET_EXHAUSTED`.
 *
 * @param remaining the counter
 * @returns true when `remaining ≤ 0`
 */
export function isExhausted(remaining: Decimal): boolean {
  return remaining <= 0n;
}

/**
 * Whether `part` is at least `percent`% of `whole`, exactly. The runtime
 * reports `cost.budget.remaining` after decrements of 5% of the initial
 * budget or more.
 *
 * @param part e.g. what was spent since the last report
 * @param whole e.g. the initial budget
 * @param percent the threshold in percent, e.g. `5`
 * @returns true when `part / whole ≥ percent / 100`
 * @example
 * ```ts
 * import { atLeastPercent, parseDecimal } from "./decimal.ts";
 * atLeastPercent(parseDecimal("0.25"), parseDecimal("5.00"), 5); // true
 * ```
 */
export function atLeastPercent(part: Decimal, whole: Decimal, percent: number): boolean {
  return part * 100n * SCALE >= whole * decimalFromNumber(percent);
}

/** A parsed `cost.budget` amount. */
export interface Amount {
  /** The currency, e.g. `USD` or `credits`. */
  currency: string;
  /** The exact amount. */
  amount: Decimal;
}

/**
 * Parses an amount string of the lease grammar `CUR:decimal`.
 *
 * @param text e.g. `"USD:5.00"` or `"credits:1000"`
 * @returns the currency and the exact amount
 * @throws {ArcpError} `INVALID_REQUEST` when the text is not `CUR:decimal`
 * @example
 * ```ts
 * import { parseAmount } from "./decimal.ts";
 * parseAmount("USD:5.00"); // { currency: "USD", amount: 5000000000000000000n }
 * ```
 */
export function parseAmount(text: string): Amount {
  const m = AMOUNT.exec(text);
  if (!m) {
    throw new ArcpError(
      "INVALID_REQUEST",
      `amount must look like CUR:decimal, e.g. USD:5.00 (got ${text.slice(0, 64)})`,
    );
  }
  return { currency: m[1], amount: parseDecimal(m[2]) };
}
