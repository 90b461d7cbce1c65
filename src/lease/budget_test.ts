import { deepEqual, equal, ok, throws } from "assert";
import { BudgetCounters } from "./budget.ts";
import { ArcpError } from "../protocol/errors.ts";

function counters(...amounts: string[]): BudgetCounters {
  const b = BudgetCounters.fromLease({ "cost.budget": amounts });
  ok(b, "a lease with cost.budget has counters");
  return b;
}

Deno.test("a lease without cost.budget has no counters", () => {
  equal(BudgetCounters.fromLease({}), undefined);
  equal(BudgetCounters.fromLease({ "cost.budget": [] }), undefined);
  equal(BudgetCounters.fromLease({ "tool.call": ["search"] }), undefined);
});

Deno.test("counters start at the lease's amounts; amounts of one currency add up", () => {
  const b = counters("USD:1.00", "credits:1000", "USD:0.50");
  deepEqual(b.initial(), { USD: 1.5, credits: 1000 });
  deepEqual(b.snapshot(), { USD: 1.5, credits: 1000 });
  deepEqual(b.toStored(), { USD: "1.5", credits: "1000" });
  equal(b.exhaustedCurrency(), undefined);
});

Deno.test("a malformed amount is INVALID_REQUEST", () => {
  throws(
    () => counters("1.00"),
    (e: unknown) => e instanceof ArcpError && e.code === "INVALID_REQUEST",
  );
});

Deno.test("0.3 steps on USD:1.00 report 0.7, 0.4, 0.1, -0.2 exactly", () => {
  const b = counters("USD:1.00");
  const reports = [1, 2, 3, 4].map(() => b.applyMetric("cost.search", 0.3, "USD"));
  deepEqual(reports, [0.7, 0.4, 0.1, -0.2].map((value) => ({ currency: "USD", value })));
  deepEqual(b.snapshot(), { USD: -0.2 });
  deepEqual(b.toStored(), { USD: "-0.2" });
  equal(b.exhaustedCurrency(), "USD");
});

Deno.test("ten decrements of 0.1 empty USD:1.00 exactly, not one before", () => {
  const b = counters("USD:1.00");
  for (let i = 1; i <= 9; i++) {
    const r = b.applyMetric("cost.x", 0.1, "USD");
    deepEqual(r, { currency: "USD", value: Number(`0.${10 - i}`) }, `decrement ${i}`);
    equal(b.exhaustedCurrency(), undefined, `after ${i} decrements`);
  }
  deepEqual(b.applyMetric("cost.x", 0.1, "USD"), { currency: "USD", value: 0 });
  equal(b.remaining("USD"), 0n);
  equal(b.exhaustedCurrency(), "USD");
  deepEqual(b.toStored(), { USD: "0" });
});

Deno.test("reports come after material decrements (≥ 5% of the initial) and at ≤ 0", () => {
  const b = counters("USD:1.00");
  // 0.01 is 1%: four of them stay unreported, the fifth makes 5%.
  for (let i = 0; i < 4; i++) equal(b.applyMetric("cost.x", 0.01, "USD"), undefined);
  deepEqual(b.applyMetric("cost.x", 0.01, "USD"), { currency: "USD", value: 0.95 });
  // The count restarts after a report.
  equal(b.applyMetric("cost.x", 0.049, "USD"), undefined);
  deepEqual(b.applyMetric("cost.x", 0.001, "USD"), { currency: "USD", value: 0.9 });
  // A single material decrement reports at once.
  deepEqual(b.applyMetric("cost.x", 0.05, "USD"), { currency: "USD", value: 0.85 });
  // A small decrement that reaches zero reports, and so does one below zero.
  const tiny = counters("USD:0.02");
  equal(tiny.applyMetric("cost.x", 0.0009, "USD"), undefined);
  deepEqual(tiny.applyMetric("cost.x", 0.0191, "USD"), { currency: "USD", value: 0 });
  deepEqual(tiny.applyMetric("cost.x", 0.0001, "USD"), { currency: "USD", value: -0.0001 });
});

Deno.test("negative, zero and non-finite values, other currencies and non-cost names are ignored", () => {
  const b = counters("USD:1.00");
  equal(b.applyMetric("cost.x", -5, "USD"), undefined);
  equal(b.applyMetric("cost.x", 0, "USD"), undefined);
  equal(b.applyMetric("cost.x", Number.NaN, "USD"), undefined);
  equal(b.applyMetric("cost.x", 0.5, "EUR"), undefined);
  equal(b.applyMetric("cost.x", 0.5, "usd"), undefined);
  equal(b.applyMetric("cost.x", 0.5, undefined), undefined);
  equal(b.applyMetric("tokens", 0.5, "USD"), undefined);
  equal(b.applyMetric("costs", 0.5, "USD"), undefined);
  equal(b.applyMetric("x.cost.y", 0.5, "USD"), undefined);
  deepEqual(b.snapshot(), { USD: 1 });
  equal(b.exhaustedCurrency(), undefined);
});

Deno.test("currencies are tracked independently; any one at zero exhausts the budget", () => {
  const b = counters("USD:1.00", "credits:100");
  deepEqual(b.applyMetric("cost.llm", 0.5, "USD"), { currency: "USD", value: 0.5 });
  deepEqual(b.applyMetric("cost.api", 10, "credits"), { currency: "credits", value: 90 });
  deepEqual(b.snapshot(), { USD: 0.5, credits: 90 });
  equal(b.exhaustedCurrency(), undefined);
  deepEqual(b.applyMetric("cost.api", 90, "credits"), { currency: "credits", value: 0 });
  equal(b.exhaustedCurrency(), "credits");
  deepEqual(b.snapshot(), { USD: 0.5, credits: 0 });
});

Deno.test("restored counters continue from the stored remaining amounts", () => {
  const lease = { "cost.budget": ["USD:1.00"] };
  const first = BudgetCounters.fromLease(lease)!;
  first.applyMetric("cost.x", 0.3, "USD");
  const stored = first.toStored();
  deepEqual(stored, { USD: "0.7" });
  const again = BudgetCounters.fromLease(lease, JSON.parse(JSON.stringify(stored)))!;
  deepEqual(again.initial(), { USD: 1 });
  deepEqual(again.snapshot(), { USD: 0.7 });
  deepEqual(again.applyMetric("cost.x", 0.7, "USD"), { currency: "USD", value: 0 });
  equal(again.exhaustedCurrency(), "USD");
});

Deno.test("huge and tiny values stay exact", () => {
  const b = counters("credits:100000000000000000");
  deepEqual(b.applyMetric("cost.x", 1e16, "credits"), {
    currency: "credits",
    value: 90000000000000000,
  });
  deepEqual(b.toStored(), { credits: "90000000000000000" });
  const c = counters("USD:0.000000000000000010");
  deepEqual(c.applyMetric("cost.x", 1e-17, "USD"), { currency: "USD", value: 0 });
  equal(c.exhaustedCurrency(), "USD");
});
