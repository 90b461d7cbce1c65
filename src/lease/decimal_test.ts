import { deepEqual, equal, notEqual, ok, throws } from "assert";
import { ArcpError } from "../protocol/errors.ts";
import {
  atLeastPercent,
  DECIMAL_PLACES,
  decimalFromNumber,
  decimalToNumber,
  formatDecimal,
  isExhausted,
  parseAmount,
  parseDecimal,
} from "./decimal.ts";

const ONE = 10n ** BigInt(DECIMAL_PLACES);

function isInvalid(err: unknown): boolean {
  return err instanceof ArcpError && err.code === "INVALID_REQUEST";
}

Deno.test("ten decrements of 0.1 take 1.00 to exactly zero", () => {
  let remaining = parseAmount("USD:1.00").amount;
  let float = 1.0;
  for (let i = 0; i < 10; i++) {
    remaining -= decimalFromNumber(0.1);
    float -= 0.1;
  }
  equal(remaining, 0n);
  ok(isExhausted(remaining));
  equal(decimalToNumber(remaining), 0);
  notEqual(float, 0, "the same sum in floats misses zero");
});

Deno.test("parseDecimal reads fractions, signs and exponents exactly", () => {
  equal(parseDecimal("1.00"), ONE);
  equal(parseDecimal("0"), 0n);
  equal(parseDecimal("-0"), 0n);
  equal(parseDecimal("1000"), 1000n * ONE);
  equal(parseDecimal("-0.5"), -ONE / 2n);
  equal(parseDecimal("1e-7"), ONE / 10_000_000n);
  equal(parseDecimal("1.5e+21"), 15n * 10n ** 20n * ONE);
  equal(parseDecimal("123.456E-2"), 1_23456n * ONE / 100_000n);
  equal(parseDecimal("0.000000000000000001"), 1n);
  equal(
    parseDecimal("123456789012345678.123456789012345678"),
    123456789012345678123456789012345678n,
  );
});

Deno.test("digits past the 18th place round away from zero, so no cost is under-counted", () => {
  equal(parseDecimal("0.0000000000000000001"), 1n);
  equal(parseDecimal("0.0000000000000000019"), 2n);
  equal(parseDecimal("-0.0000000000000000001"), -1n);
  equal(decimalFromNumber(5e-324), 1n);
  equal(decimalFromNumber(1.5e-18), 2n);
});

Deno.test("parseDecimal refuses what is not a decimal with INVALID_REQUEST", () => {
  for (
    const bad of ["", "1.", ".5", "1,0", "abc", "1e", "+1", "NaN", "Infinity", "0x10", "1e401"]
  ) {
    throws(() => parseDecimal(bad), isInvalid, bad);
  }
});

Deno.test("metric numbers are read through their shortest decimal string", () => {
  equal(decimalFromNumber(0.1), ONE / 10n);
  equal(decimalFromNumber(0.0234), 234n * ONE / 10_000n);
  equal(decimalFromNumber(1e-7), ONE / 10_000_000n);
  equal(decimalFromNumber(1e21), 10n ** 21n * ONE);
  equal(decimalFromNumber(-2.5), -5n * ONE / 2n);
  equal(decimalFromNumber(0.1 + 0.2), 30000000000000004n * ONE / 10n ** 17n);
  for (const bad of [NaN, Infinity, -Infinity]) throws(() => decimalFromNumber(bad), isInvalid);
});

Deno.test("formatDecimal and decimalToNumber give the shortest form and the nearest double", () => {
  equal(formatDecimal(0n), "0");
  equal(formatDecimal(ONE), "1");
  equal(formatDecimal(3n * ONE / 2n), "1.5");
  equal(formatDecimal(-ONE / 4n), "-0.25");
  equal(formatDecimal(1n), "0.000000000000000001");
  equal(decimalToNumber(parseDecimal("3.58")), 3.58);
  equal(decimalToNumber(parseDecimal("5.00") - decimalFromNumber(0.0234)), 4.9766);
  equal(decimalToNumber(-ONE / 2n), -0.5);
  for (const n of [0.1, 1e-7, 123.456, 1e21, 2 ** 53 + 2]) {
    equal(decimalToNumber(decimalFromNumber(n)), n);
  }
});

Deno.test("atLeastPercent compares exactly at the 5% boundary", () => {
  const initial = parseDecimal("5.00");
  ok(atLeastPercent(parseDecimal("0.25"), initial, 5));
  ok(!atLeastPercent(parseDecimal("0.249999999999999999"), initial, 5));
  ok(atLeastPercent(parseDecimal("0.125"), initial, 2.5));
  ok(!atLeastPercent(0n, initial, 5));
  ok(atLeastPercent(0n, 0n, 5), "nothing of nothing is every share");
});

Deno.test("parseAmount splits CUR:decimal", () => {
  deepEqual(parseAmount("USD:5.00"), { currency: "USD", amount: 5n * ONE });
  deepEqual(parseAmount("credits:1000"), { currency: "credits", amount: 1000n * ONE });
  for (const bad of ["USD5", "USD:-1", ":5", "USD:1e3", "USD:1.", "USD:"]) {
    throws(() => parseAmount(bad), isInvalid, bad);
  }
});
