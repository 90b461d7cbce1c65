/**
 * Budgets (ARCP.md §5.4) with real agents over a real WebSocket: exact
 * decimal counters, `cost.budget.remaining` reports, BUDGET_EXHAUSTED
 * surfaced to the agent, currencies, the order of lease checks, current
 * counters for subscribers, and counters that survive a restart.
 */
import { deepEqual, equal, ok } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect, type Env, type WsClient } from "../../testing/ws_client.ts";
import {
  failure,
  LEASE_AGENTS,
  type Op,
  remainingReports,
  run,
  runOps,
  toolErrors,
  value,
} from "./_lease.ts";

const SEARCH = { "tool.call": ["search"] };
const EXHAUSTED = "LeaseError BUDGET_EXHAUSTED";
const DENIED = "LeaseError PERMISSION_DENIED";

const cost = (value: number, unit?: string, name = "cost.test"): Op => ({
  op: "metric",
  name,
  value,
  ...(unit === undefined ? {} : { unit }),
});
const check: Op = { op: "authorize", ns: "tool.call", target: "search" };

/** Subscribes to a job and returns `job.subscribed`. */
async function subscribe(c: WsClient, jobId: string, history = false): Promise<Env> {
  c.send("job.subscribe", { job_id: jobId, history });
  const res = await c.next(
    (e) => (e.type === "job.subscribed" && e.job_id === jobId) || e.type === "session.error",
    10_000,
    "job.subscribed",
  );
  equal(res.type, "job.subscribed", JSON.stringify(res.payload));
  return res;
}

function spend(steps: number, cost: number, budget = "USD:1.00") {
  return {
    agent: "spender",
    input: { steps, cost, currency: "USD" },
    lease_request: { ...SEARCH, "cost.budget": [budget] },
  };
}

Deno.test("budget counters over the wire", async (t) => {
  await using server = await startServer({ agentsDir: LEASE_AGENTS });
  await using c = await connect(server.url);
  await using other = await connect(server.url);

  await t.step(
    "spender 10 × 0.3 on USD:1.00 completes 4 steps, then BUDGET_EXHAUSTED",
    async () => {
      const ran = await run(c, spend(10, 0.3));
      deepEqual(ran.accepted.payload.budget, { USD: 1 });
      equal(ran.terminal.type, "job.result", JSON.stringify(ran.terminal.payload));
      deepEqual(ran.terminal.payload.result, { completed_steps: 4, stopped: "BUDGET_EXHAUSTED" });
      // Exact decimals on the wire: no 0.30000000000000004 or 0.09999999999999998.
      deepEqual(remainingReports(ran), [["USD", 0.7], ["USD", 0.4], ["USD", 0.1], ["USD", -0.2]]);
      // Each report follows the metric that caused it.
      const kinds = ran.events.map((e) =>
        e.kind === "metric"
          ? String(e.body.name)
          : e.kind === "tool_result" && e.body.error
          ? `error:${(e.body.error as { code: string }).code}`
          : e.kind
      ).filter((k) => k !== "status");
      deepEqual(kinds, [
        ...Array(4).fill(["tool_call", "tool_result", "cost.search", "cost.budget.remaining"])
          .flat(),
        "tool_call",
        "error:BUDGET_EXHAUSTED",
      ]);
      const err = ran.events.findLast((e) => e.kind === "tool_result")!.body.error as Record<
        string,
        unknown
      >;
      equal(err.retryable, false);
      // Another session of the principal sees the final counters.
      deepEqual((await subscribe(other, ran.accepted.job_id!)).payload.budget, { USD: -0.2 });
    },
  );

  await t.step(
    "ten 0.1 decrements spend exactly 1.00; the 9th leaves the lease usable",
    async () => {
      const ops: Op[] = [];
      for (let i = 0; i < 9; i++) ops.push(cost(0.1, "USD"));
      ops.push(check, { op: "tool", name: "search", args: { q: "ninth" } });
      ops.push(cost(0.1, "USD"), check, { op: "tool", name: "search", args: { q: "tenth" } });
      const ran = await runOps(c, { ...SEARCH, "cost.budget": ["USD:1.00"] }, ops);
      deepEqual(ran.outcomes.slice(0, 12).map((o, i) => ("ok" in o) || i), Array(12).fill(true));
      deepEqual(ran.outcomes.slice(12).map((o) => failure(o)), [EXHAUSTED, EXHAUSTED]);
      deepEqual(remainingReports(ran).map(([, v]) => v), [
        0.9,
        0.8,
        0.7,
        0.6,
        0.5,
        0.4,
        0.3,
        0.2,
        0.1,
        0,
      ]);
      deepEqual(toolErrors(ran), ["BUDGET_EXHAUSTED", "BUDGET_EXHAUSTED"]);
      deepEqual((await subscribe(other, ran.accepted.job_id!)).payload.budget, { USD: 0 });
    },
  );

  await t.step("spender 10 × 0.1 finishes all steps; 11 × 0.1 stops at 10", async () => {
    const ten = await run(c, spend(10, 0.1));
    deepEqual(ten.terminal.payload.result, { completed_steps: 10 });
    deepEqual(remainingReports(ten).at(-1), ["USD", 0]);
    const eleven = await run(c, spend(11, 0.1));
    deepEqual(eleven.terminal.payload.result, {
      completed_steps: 10,
      stopped: "BUDGET_EXHAUSTED",
    });
  });

  await t.step("small decrements are reported once they add up to 5% of the budget", async () => {
    const ran = await runOps(c, { ...SEARCH, "cost.budget": ["USD:1.00"] }, [
      ...Array(9).fill(cost(0.01, "USD")),
      check,
    ]);
    deepEqual(remainingReports(ran), [["USD", 0.95]]);
    equal(value(ran.outcomes[9]), null);
    deepEqual((await subscribe(other, ran.accepted.job_id!)).payload.budget, { USD: 0.91 });
  });

  await t.step(
    "negative costs, other currencies and non-cost metrics do not decrement",
    async () => {
      const ran = await runOps(c, { ...SEARCH, "cost.budget": ["USD:1.00"] }, [
        cost(-5, "USD"),
        cost(0.5, "EUR"),
        cost(0.5, "usd"),
        cost(0.5),
        cost(0.5, "USD", "tokens"),
        cost(0.5, "USD", "costly"),
        cost(0, "USD"),
        check,
      ]);
      ran.outcomes.forEach((o, i) => value(o, `op ${i}`));
      deepEqual(remainingReports(ran), []);
      // The metrics themselves still reach the client.
      equal(ran.events.filter((e) => e.kind === "metric").length, 7);
      deepEqual((await subscribe(other, ran.accepted.job_id!)).payload.budget, { USD: 1 });
    },
  );

  await t.step("currencies are tracked independently", async () => {
    const ran = await runOps(c, { ...SEARCH, "cost.budget": ["USD:1.00", "credits:100"] }, [
      cost(0.5, "USD"),
      cost(10, "credits"),
      check,
      cost(90, "credits"),
      check,
    ]);
    deepEqual(ran.accepted.payload.budget, { USD: 1, credits: 100 });
    deepEqual(remainingReports(ran), [["USD", 0.5], ["credits", 90], ["credits", 0]]);
    equal(value(ran.outcomes[2]), null);
    equal(failure(ran.outcomes[4]), EXHAUSTED);
    ok(
      "error" in ran.outcomes[4] && ran.outcomes[4].error.message.includes("credits"),
      JSON.stringify(ran.outcomes[4]),
    );
    deepEqual((await subscribe(other, ran.accepted.job_id!)).payload.budget, {
      USD: 0.5,
      credits: 0,
    });
  });

  await t.step(
    "an operation outside the lease on an exhausted budget is PERMISSION_DENIED",
    async () => {
      const ran = await runOps(c, { ...SEARCH, "cost.budget": ["USD:1.00"] }, [
        cost(1, "USD"),
        { op: "authorize", ns: "tool.call", target: "other" },
        { op: "tool", name: "other" },
        { op: "useModel", model: "tier-fast/a" },
        { op: "readText", path: "/etc/hostname" },
        check,
        { op: "tool", name: "search" },
      ]);
      deepEqual(ran.outcomes.slice(1).map((o) => failure(o)), [
        DENIED,
        DENIED,
        DENIED,
        DENIED,
        EXHAUSTED,
        EXHAUSTED,
      ]);
      deepEqual(toolErrors(ran), [
        "PERMISSION_DENIED",
        "PERMISSION_DENIED",
        "PERMISSION_DENIED",
        "PERMISSION_DENIED",
        "BUDGET_EXHAUSTED",
        "BUDGET_EXHAUSTED",
      ]);
    },
  );

  await t.step("an uncaught BUDGET_EXHAUSTED ends the job with it, not retryable", async () => {
    const ran = await run(c, {
      agent: "ops",
      input: { ops: [cost(2, "USD"), check], rethrow: true },
      lease_request: { ...SEARCH, "cost.budget": ["USD:1.00"] },
    });
    equal(ran.terminal.type, "job.error");
    equal(ran.terminal.payload.final_status, "error");
    equal(ran.terminal.payload.code, "BUDGET_EXHAUSTED");
    equal(ran.terminal.payload.retryable, false);
  });

  await t.step("job.subscribed from another session shows the current counters", async () => {
    const gate = `${await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_gate_" }))}/go`;
    try {
      const acc = await c.submit({
        agent: "ops",
        input: { ops: [cost(0.3, "USD"), { op: "waitFile", path: gate }, cost(0.3, "USD")] },
        lease_request: { "fs.read": [gate], "cost.budget": ["USD:1.00"] },
      });
      equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
      await c.next(
        (e) => e.job_id === acc.job_id && e.payload?.body?.name === "cost.budget.remaining",
        10_000,
        "first remaining report",
      );
      const sub = await subscribe(other, acc.job_id!);
      equal(sub.payload.current_status, "running");
      deepEqual(sub.payload.budget, { USD: 0.7 });
      await Deno.writeTextFile(gate, "");
      const seen = await other.untilTerminal(acc.job_id!);
      equal(seen.at(-1)!.type, "job.result");
      deepEqual(
        seen.filter((e) => e.payload?.body?.name === "cost.budget.remaining")
          .map((e) => e.payload.body.value),
        [0.4],
      );
      await c.untilTerminal(acc.job_id!);
      deepEqual((await subscribe(other, acc.job_id!)).payload.budget, { USD: 0.4 });
    } finally {
      await Deno.remove(gate.replace(/\/go$/, ""), { recursive: true });
    }
  });
});

Deno.test("budget counters survive a restart", async () => {
  const first = await startServer({ agentsDir: LEASE_AGENTS });
  try {
    let jobId: string;
    {
      await using c = await connect(first.url);
      const ran = await run(c, spend(10, 0.3));
      deepEqual(ran.terminal.payload.result, { completed_steps: 4, stopped: "BUDGET_EXHAUSTED" });
      jobId = ran.accepted.job_id!;
    }
    await first.close();

    await using second = await startServer({ agentsDir: LEASE_AGENTS, kvPath: first.kvPath });
    await using c = await connect(second.url);
    const req = c.send("session.list_jobs", {});
    const list = await c.next(
      (e) => e.type === "session.jobs" && e.payload.request_id === req.id,
      10_000,
      "session.jobs",
    );
    const entry = list.payload.jobs.find((j: { job_id: string }) => j.job_id === jobId);
    ok(entry, "the finished job is listed after the restart");
    equal(entry.status, "success");
    deepEqual(entry.lease["cost.budget"], ["USD:1.00"]);

    const sub = await subscribe(c, jobId, true);
    equal(sub.payload.current_status, "success");
    deepEqual(sub.payload.budget, { USD: -0.2 });
    const replayed = await c.untilTerminal(jobId);
    deepEqual(
      replayed.filter((e) => e.payload?.body?.name === "cost.budget.remaining")
        .map((e) => e.payload.body.value),
      [0.7, 0.4, 0.1, -0.2],
    );
  } finally {
    await first.close(true);
  }
});
