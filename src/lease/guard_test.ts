import { equal, ok, rejects } from "assert";
import { ArcpError } from "../protocol/errors.ts";
import { type BudgetState, LeaseGuard } from "./guard.ts";
import { BudgetCounters } from "./budget.ts";

/** Whether `check` refuses with this code. */
async function refuses(guard: LeaseGuard, ns: string, target: string, code: string) {
  await rejects(guard.check(ns, target), (err: unknown) => {
    ok(err instanceof ArcpError, String(err));
    equal(err.code, code, `${ns} ${target}: ${err.message}`);
    ok(err.message.length > 0);
    return true;
  });
}

const NONE: BudgetState = { exhaustedCurrency: () => undefined };
const SPENT: BudgetState = { exhaustedCurrency: () => "USD" };
const FUTURE = () => Date.now() + 60_000;
const PAST = () => Date.now() - 1;

Deno.test("fs globs are matched exactly against canonical paths", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_guard_" }));
  try {
    await Deno.mkdir(`${dir}/data/sub`, { recursive: true });
    await Deno.writeTextFile(`${dir}/data/a.txt`, "a");
    await Deno.writeTextFile(`${dir}/secret.txt`, "s");
    await Deno.symlink(`${dir}/secret.txt`, `${dir}/data/link.txt`);
    const guard = new LeaseGuard({ "fs.read": [`${dir}/data/*.txt`] }, undefined, undefined);
    equal(await guard.check("fs.read", `${dir}/data/a.txt`), `${dir}/data/a.txt`);
    equal(await guard.check("fs.read", `${dir}//data/./a.txt`), `${dir}/data/a.txt`);
    equal(await guard.check("fs.read", `${dir}/data/new.txt`), `${dir}/data/new.txt`);
    await refuses(guard, "fs.read", `${dir}/data/sub/b.txt`, "PERMISSION_DENIED");
    await refuses(guard, "fs.read", `${dir}/data`, "PERMISSION_DENIED");
    await refuses(guard, "fs.read", `${dir}/data/a.csv`, "PERMISSION_DENIED");
    await refuses(guard, "fs.read", `${dir}/data/../secret.txt`, "PERMISSION_DENIED");
    await refuses(guard, "fs.read", `${dir}/data/link.txt`, "PERMISSION_DENIED");
    await refuses(guard, "fs.read", "data/a.txt", "PERMISSION_DENIED");
    await refuses(guard, "fs.write", `${dir}/data/a.txt`, "PERMISSION_DENIED");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("net.fetch globs are matched against canonical URLs", async () => {
  const guard = new LeaseGuard(
    { "net.fetch": ["https://api.example.com/v1/**"] },
    undefined,
    undefined,
  );
  equal(
    await guard.check("net.fetch", "https://API.Example.com/v1/items?q=1"),
    "https://api.example.com/v1/items?q=1",
  );
  equal(await guard.check("net.fetch", "https://api.example.com/v1"), "https://api.example.com/v1");
  await refuses(guard, "net.fetch", "https://api.example.com/v2/items", "PERMISSION_DENIED");
  await refuses(guard, "net.fetch", "https://api.example.com/v1/../v2", "PERMISSION_DENIED");
  await refuses(guard, "net.fetch", "https://api.example.com/v1/%2e%2e/v2", "PERMISSION_DENIED");
  await refuses(guard, "net.fetch", "http://api.example.com/v1/x", "PERMISSION_DENIED");
  await refuses(guard, "net.fetch", "https://api.example.com:8443/v1/x", "PERMISSION_DENIED");
  await refuses(guard, "net.fetch", "https://u:p@api.example.com/v1/x", "PERMISSION_DENIED");
  await refuses(guard, "net.fetch", "file:///etc/passwd", "PERMISSION_DENIED");
  await refuses(guard, "net.fetch", "not a url", "PERMISSION_DENIED");
});

Deno.test("tool, agent, model and vendor namespaces match names as globs", async () => {
  const guard = new LeaseGuard(
    {
      "tool.call": ["search", "db.*"],
      "agent.delegate": ["echo"],
      "model.use": ["tier-fast/*"],
      "x-vendor.acme.widget": ["blue/**"],
    },
    undefined,
    undefined,
  );
  equal(await guard.check("tool.call", "search"), "search");
  equal(await guard.check("tool.call", "db.query"), "db.query");
  await refuses(guard, "tool.call", "searchx", "PERMISSION_DENIED");
  await refuses(guard, "tool.call", "db/query", "PERMISSION_DENIED");
  equal(await guard.check("agent.delegate", "echo"), "echo");
  await refuses(guard, "agent.delegate", "echo2", "PERMISSION_DENIED");
  equal(await guard.check("model.use", "tier-fast/a"), "tier-fast/a");
  await refuses(guard, "model.use", "tier-slow/a", "PERMISSION_DENIED");
  await refuses(guard, "model.use", "tier-fast/a/b", "PERMISSION_DENIED");
  equal(await guard.check("x-vendor.acme.widget", "blue/x/y"), "blue/x/y");
  await refuses(guard, "x-vendor.acme.widget", "red", "PERMISSION_DENIED");
  await refuses(guard, "fs.read", "/etc/passwd", "PERMISSION_DENIED");
});

Deno.test("an empty, oversized or non-string target is PERMISSION_DENIED", async () => {
  const guard = new LeaseGuard({ "tool.call": ["**"] }, undefined, undefined);
  equal(await guard.check("tool.call", "x".repeat(4096)), "x".repeat(4096));
  await refuses(guard, "tool.call", "", "PERMISSION_DENIED");
  await refuses(guard, "tool.call", "x".repeat(4097), "PERMISSION_DENIED");
  await refuses(guard, "tool.call", 42 as unknown as string, "PERMISSION_DENIED");
});

Deno.test("model.use: a lease without it forbids every model unless the runtime relaxes that", async () => {
  const strict = new LeaseGuard({}, undefined, undefined);
  await refuses(strict, "model.use", "tier-fast/a", "PERMISSION_DENIED");
  const byDefault = new LeaseGuard({}, undefined, undefined, { requireModelLease: true });
  await refuses(byDefault, "model.use", "anything", "PERMISSION_DENIED");
  const open = new LeaseGuard({}, undefined, undefined, { requireModelLease: false });
  equal(await open.check("model.use", "tier-slow/a"), "tier-slow/a");
  // Relaxing opens models only: other namespaces stay closed.
  await refuses(open, "tool.call", "search", "PERMISSION_DENIED");
  // A lease that names models is held to them even when the runtime is relaxed.
  const named = new LeaseGuard({ "model.use": ["tier-fast/*"] }, undefined, undefined, {
    requireModelLease: false,
  });
  await refuses(named, "model.use", "tier-slow/a", "PERMISSION_DENIED");
  const none = new LeaseGuard({ "model.use": [] }, undefined, undefined, {
    requireModelLease: false,
  });
  await refuses(none, "model.use", "tier-fast/a", "PERMISSION_DENIED");
});

Deno.test("expiry: operations before expires_at pass, at or after it are LEASE_EXPIRED", async () => {
  const lease = { "tool.call": ["search"] };
  equal(await new LeaseGuard(lease, FUTURE(), undefined).check("tool.call", "search"), "search");
  const expired = new LeaseGuard(lease, PAST(), undefined);
  await refuses(expired, "tool.call", "search", "LEASE_EXPIRED");
  // The boundary, on a pinned clock: one ms before passes, exactly at it is expired.
  const at = Date.parse("2030-01-01T00:00:00.000Z");
  const edge = new LeaseGuard(lease, at, undefined);
  const realNow = Date.now;
  try {
    Date.now = () => at - 1;
    equal(await edge.check("tool.call", "search"), "search");
    Date.now = () => at;
    await refuses(edge, "tool.call", "search", "LEASE_EXPIRED");
  } finally {
    Date.now = realNow;
  }
});

Deno.test("budget: an exhausted counter refuses with BUDGET_EXHAUSTED naming the currency", async () => {
  const lease = { "tool.call": ["search"], "cost.budget": ["USD:1.00"] };
  const budget = BudgetCounters.fromLease(lease)!;
  const guard = new LeaseGuard(lease, undefined, budget);
  equal(await guard.check("tool.call", "search"), "search");
  budget.applyMetric("cost.x", 0.9, "USD");
  equal(await guard.check("tool.call", "search"), "search");
  budget.applyMetric("cost.x", 0.1, "USD");
  await rejects(guard.check("tool.call", "search"), (err: ArcpError) => {
    equal(err.code, "BUDGET_EXHAUSTED");
    equal(err.retryable, false);
    ok(err.message.includes("USD"), err.message);
    return true;
  });
});

Deno.test("order of checks: glob, then expiry, then budget", async () => {
  const lease = { "tool.call": ["search"] };
  // Outside the lease, expired and out of budget: the glob speaks first.
  await refuses(new LeaseGuard(lease, PAST(), SPENT), "tool.call", "other", "PERMISSION_DENIED");
  await refuses(new LeaseGuard(lease, undefined, SPENT), "tool.call", "other", "PERMISSION_DENIED");
  await refuses(new LeaseGuard(lease, PAST(), NONE), "tool.call", "other", "PERMISSION_DENIED");
  // Inside the lease, expired and out of budget: expiry before budget.
  await refuses(new LeaseGuard(lease, PAST(), SPENT), "tool.call", "search", "LEASE_EXPIRED");
  await refuses(new LeaseGuard(lease, FUTURE(), SPENT), "tool.call", "search", "BUDGET_EXHAUSTED");
  // A target that cannot be canonicalized is a glob refusal too.
  await refuses(new LeaseGuard({}, PAST(), SPENT), "fs.read", "relative", "PERMISSION_DENIED");
});

Deno.test("checkLive checks expiry then budget, without a target", () => {
  new LeaseGuard({}, FUTURE(), NONE).checkLive();
  new LeaseGuard({}, undefined, undefined).checkLive();
  const code = (g: LeaseGuard) => {
    try {
      g.checkLive();
      return "ok";
    } catch (err) {
      return (err as ArcpError).code;
    }
  };
  equal(code(new LeaseGuard({}, PAST(), SPENT)), "LEASE_EXPIRED");
  equal(code(new LeaseGuard({}, PAST(), NONE)), "LEASE_EXPIRED");
  equal(code(new LeaseGuard({}, FUTURE(), SPENT)), "BUDGET_EXHAUSTED");
});
