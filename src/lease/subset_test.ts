import { deepEqual, equal, ok } from "assert";
import { parseDecimal } from "./decimal.ts";
import { ArcpError } from "../protocol/errors.ts";
import type { Lease } from "../protocol/lease.ts";
import {
  checkLeaseSubset,
  type LeaseSubsetOk,
  type LeaseSubsetResult,
  type LeaseSubsetViolation,
} from "./subset.ts";

const PARENT: Lease = {
  "fs.read": ["/srv/**"],
  "fs.write": ["/srv/out/*"],
  "net.fetch": ["https://api.example.com/**", "https://*.cdn.example.com/assets/**"],
  "tool.call": ["search", "files/*"],
  "agent.delegate": ["helper-*"],
  "model.use": ["openai/gpt-4o*", "anthropic/*"],
  "x-vendor.acme.queue": ["jobs/**"],
};
const EXPIRES = "2030-01-01T00:00:00Z";

function subset(child: Lease, childExpiresAt?: string, parent: Lease = PARENT): LeaseSubsetResult {
  return checkLeaseSubset(parent, undefined, EXPIRES, child, childExpiresAt);
}

function accepted(r: LeaseSubsetResult): LeaseSubsetOk {
  ok(r.ok, r.ok ? "" : r.error.message);
  return r as LeaseSubsetOk;
}

function refused(r: LeaseSubsetResult, namespace: string, pattern?: string): LeaseSubsetViolation {
  ok(!r.ok, "expected a violation");
  const v = r as LeaseSubsetViolation;
  equal(v.namespace, namespace);
  equal(v.pattern, pattern);
  ok(v.error instanceof ArcpError);
  equal(v.error.code, "LEASE_SUBSET_VIOLATION");
  equal(v.error.retryable, false);
  deepEqual(v.error.details, pattern === undefined ? { namespace } : { namespace, pattern });
  return v;
}

Deno.test("a child that narrows every namespace is accepted and inherits expires_at", () => {
  const child: Lease = {
    "fs.read": ["/srv/data/*.csv", "/srv/docs/**"],
    "fs.write": ["/srv/out/report.txt"],
    "net.fetch": ["https://api.example.com/v1/*", "https://img.cdn.example.com/assets/a.png"],
    "tool.call": ["files/read"],
    "agent.delegate": ["helper-2"],
    "model.use": ["openai/gpt-4o-mini"],
    "x-vendor.acme.queue": ["jobs/a/*"],
  };
  const r = accepted(subset(child));
  deepEqual(r.lease, child);
  equal(r.budget, undefined);
  equal(r.expiresAt, EXPIRES);
  deepEqual(accepted(subset(PARENT)).lease, PARENT, "the parent's own lease is a subset");
  deepEqual(accepted(subset({})).lease, {});
});

Deno.test("a pattern the parent does not cover is named in the violation", () => {
  refused(subset({ "fs.read": ["/srv/data/**", "/etc/**"] }), "fs.read", "/etc/**");
  refused(subset({ "fs.read": ["/**"] }), "fs.read", "/**");
  refused(subset({ "fs.write": ["/srv/out/**"] }), "fs.write", "/srv/out/**");
  refused(subset({ "fs.write": ["/srv/data/x"] }), "fs.write", "/srv/data/x");
  refused(
    subset({ "net.fetch": ["https://*.example.com/**"] }),
    "net.fetch",
    "https://*.example.com/**",
  );
  refused(subset({ "tool.call": ["files/**"] }), "tool.call", "files/**");
  refused(subset({ "agent.delegate": ["*"] }), "agent.delegate", "*");
  refused(subset({ "model.use": ["openai/o3"] }), "model.use", "openai/o3");
  refused(subset({ "model.use": ["anthropic/**"] }), "model.use", "anthropic/**");
});

Deno.test("a namespace the parent lacks cannot appear in the child, unless it is empty", () => {
  const parent: Lease = { "fs.read": ["/srv/**"] };
  refused(subset({ "model.use": ["gpt"] }, undefined, parent), "model.use", "gpt");
  refused(subset({ "fs.write": ["/srv/**"] }, undefined, parent), "fs.write", "/srv/**");
  refused(subset({ "x-vendor.acme.other": ["a"] }, undefined, parent), "x-vendor.acme.other", "a");
  refused(subset({ "constructor": ["a"] }, undefined, parent), "constructor", "a");
  accepted(subset({ "model.use": [] }, undefined, parent));
  refused(subset({ "fs.read": ["/srv/a"] }, undefined, { "fs.read": [] }), "fs.read", "/srv/a");
});

Deno.test("the child's expires_at may be earlier or equal, never later; omitted it is inherited", () => {
  equal(accepted(subset({}, "2029-06-01T00:00:00Z")).expiresAt, "2029-06-01T00:00:00Z");
  equal(accepted(subset({}, EXPIRES)).expiresAt, EXPIRES);
  equal(accepted(subset({}, "2029-12-31T23:59:59.999Z")).expiresAt, "2029-12-31T23:59:59.999Z");
  refused(
    subset({}, "2030-01-01T00:00:00.001Z"),
    "lease_constraints.expires_at",
    "2030-01-01T00:00:00.001Z",
  );
  refused(
    subset({}, "2030-01-01T01:00:00+01:00"),
    "lease_constraints.expires_at",
    "2030-01-01T01:00:00+01:00",
  );
  const free = checkLeaseSubset({}, undefined, undefined, {}, "2099-01-01T00:00:00Z");
  equal(accepted(free).expiresAt, "2099-01-01T00:00:00Z", "a parent without expiry bounds nothing");
  equal(accepted(checkLeaseSubset({}, undefined, undefined, {}, undefined)).expiresAt, undefined);
  refused(
    checkLeaseSubset({}, undefined, "soon", {}, undefined),
    "lease_constraints.expires_at",
    "soon",
  );
});

Deno.test("child budgets must fit the parent's remaining counters, per currency", () => {
  const parent: Lease = { "cost.budget": ["USD:5.00", "credits:1000"] };
  const remaining = { USD: parseDecimal("2.00"), credits: parseDecimal("1000") };
  const check = (child: string[]) =>
    checkLeaseSubset(parent, remaining, undefined, { "cost.budget": child }, undefined);

  const fits = accepted(check(["USD:2.00", "credits:10"]));
  deepEqual(fits.budget, { USD: parseDecimal("2"), credits: parseDecimal("10") });
  deepEqual(fits.lease["cost.budget"], ["USD:2.00", "credits:10"]);

  const over = refused(check(["USD:2.01"]), "cost.budget", "USD:2.01");
  ok(over.error.message.includes("USD:2"), over.error.message);
  refused(check(["USD:1.00", "USD:1.50"]), "cost.budget", "USD:1.50");
  refused(check(["EUR:0.01"]), "cost.budget", "EUR:0.01");
  refused(check(["constructor:1"]), "cost.budget", "constructor:1");
  refused(check(["USD:lots"]), "cost.budget", "USD:lots");
});

Deno.test("the parent's spending is exact: 5.00 minus ten 0.30s leaves room for exactly 2.00", () => {
  let usd = parseDecimal("5.00");
  for (let i = 0; i < 10; i++) usd -= parseDecimal(String(0.3));
  const parent: Lease = { "cost.budget": ["USD:5.00"] };
  accepted(
    checkLeaseSubset(parent, { USD: usd }, undefined, { "cost.budget": ["USD:2.00"] }, undefined),
  );
  refused(
    checkLeaseSubset(parent, { USD: usd }, undefined, {
      "cost.budget": ["USD:2.000000000000000001"],
    }, undefined),
    "cost.budget",
    "USD:2.000000000000000001",
  );
});

Deno.test("currencies the child omits are inherited at the parent's remaining amount", () => {
  const parent: Lease = { "fs.read": ["/srv/**"], "cost.budget": ["USD:5.00", "credits:1000"] };
  const remaining = { USD: parseDecimal("2.5"), credits: parseDecimal("-3") };
  const none = accepted(
    checkLeaseSubset(parent, remaining, undefined, { "fs.read": ["/srv/a"] }, undefined),
  );
  deepEqual(none.lease, { "fs.read": ["/srv/a"], "cost.budget": ["USD:2.5", "credits:0"] });
  deepEqual(none.budget, { USD: parseDecimal("2.5"), credits: 0n });

  const some = accepted(
    checkLeaseSubset(parent, remaining, undefined, { "cost.budget": ["USD:1"] }, undefined),
  );
  deepEqual(some.lease["cost.budget"], ["USD:1", "credits:0"]);
  deepEqual(some.budget, { USD: parseDecimal("1"), credits: 0n });
});

Deno.test("a child budget under a parent without one is a namespace the parent lacks", () => {
  refused(
    checkLeaseSubset(
      { "fs.read": ["/**"] },
      undefined,
      undefined,
      { "cost.budget": ["USD:1"] },
      undefined,
    ),
    "cost.budget",
    "USD:1",
  );
  const empty = accepted(
    checkLeaseSubset({}, undefined, undefined, { "cost.budget": [] }, undefined),
  );
  equal(empty.budget, undefined);
});

Deno.test("adversarial glob pairs end in a violation instead of stalling", () => {
  const parent: Lease = {
    "tool.call": Array.from({ length: 64 }, (_, i) => `*a${"?".repeat(20 + i)}`),
  };
  const child: Lease = {
    "tool.call": Array.from({ length: 64 }, (_, i) => `?*a${"?".repeat(20 + i)}`),
  };
  // Each child pattern is in fact covered, but proving it costs more than
  // the check allows, so the safe answer comes back.
  const r = checkLeaseSubset(parent, undefined, undefined, child, undefined);
  equal(r.ok, false);
});
