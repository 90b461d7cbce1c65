/**
 * ctx.tool and ctx.useModel through the lease: real `ops` agents in real
 * sandbox hosts, over a real WebSocket.
 */
import { deepEqual, equal, match, ok } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect, traceId } from "../../testing/ws_client.ts";
import type { ToolContext } from "../../src/jobs/tools.ts";
import { failure, LEASE_AGENTS, run, runOps, toolErrors, value } from "./_lease.ts";

const DENIED = "LeaseError PERMISSION_DENIED";

Deno.test("ctx.tool calls leased tools, and the runtime reports every call", async (t) => {
  const calls: Array<{ args: unknown; jobId: string; traceId: string; aborted: boolean }> = [];
  await using server = await startServer({
    agentsDir: LEASE_AGENTS,
    tools: {
      echo: (args: unknown, ctx: ToolContext) => {
        calls.push({ args, jobId: ctx.jobId, traceId: ctx.traceId, aborted: ctx.signal.aborted });
        return { echoed: args };
      },
      boom: () => {
        throw new Error("the tool blew up");
      },
      later: async (args: unknown) => {
        await new Promise((r) => setTimeout(r, 20));
        return { later: args };
      },
    },
  });
  await using c = await connect(server.url);

  await t.step("the builtin search returns its result with the job's trace_id", async () => {
    const trace = traceId();
    const acc = await c.submit({
      agent: "ops",
      input: { ops: [{ op: "tool", name: "search", args: { q: "lease" } }] },
      lease_request: { "tool.call": ["search"] },
    }, { trace_id: trace });
    equal(acc.type, "job.accepted");
    equal(acc.payload.trace_id, trace);
    const envelopes = await c.untilTerminal(acc.job_id!);
    const terminal = envelopes.at(-1)!;
    equal(terminal.type, "job.result", JSON.stringify(terminal.payload));
    const result = value(terminal.payload.result[0]) as Record<string, unknown>;
    equal(result.query, "lease");
    equal(result.trace_id, trace);
    equal((result.results as unknown[]).length, 3);

    const events = envelopes.filter((e) => e.type === "job.event").map((e) => e.payload);
    const toolCalls = events.filter((e) => e.kind === "tool_call");
    const toolResults = events.filter((e) => e.kind === "tool_result");
    equal(toolCalls.length, 1);
    equal(toolResults.length, 1);
    equal(toolCalls[0].body.tool, "search");
    deepEqual(toolCalls[0].body.args, { q: "lease" });
    match(toolCalls[0].body.call_id, /^\S+$/);
    equal(toolResults[0].body.call_id, toolCalls[0].body.call_id);
    deepEqual(toolResults[0].body.result, result);
    ok(events.indexOf(toolCalls[0]) < events.indexOf(toolResults[0]));
  });

  await t.step("a tool outside the lease, or not registered, is PERMISSION_DENIED", async () => {
    calls.length = 0;
    const ran = await runOps(c, { "tool.call": ["search", "nonexistent"] }, [
      { op: "tool", name: "echo", args: { x: 1 } },
      { op: "tool", name: "nonexistent" },
      { op: "tool", name: "search", args: { q: "still fine" } },
    ]);
    deepEqual(ran.outcomes.slice(0, 2).map((o) => failure(o)), [DENIED, DENIED]);
    equal((value(ran.outcomes[2]) as { query: string }).query, "still fine");
    deepEqual(calls, [], "the unleased tool was not called");
    const toolCalls = ran.events.filter((e) => e.kind === "tool_call");
    const toolResults = ran.events.filter((e) => e.kind === "tool_result");
    deepEqual(toolCalls.map((e) => e.body.tool), ["echo", "nonexistent", "search"]);
    deepEqual(toolResults.map((e) => e.body.call_id), toolCalls.map((e) => e.body.call_id));
    deepEqual(toolErrors(ran), ["PERMISSION_DENIED", "PERMISSION_DENIED"]);
    const err = toolResults[0].body.error as Record<string, unknown>;
    equal(err.retryable, false);
    ok(String(err.message).length > 0);
  });

  await t.step("a registered tool gets the job's id, trace id and args", async () => {
    calls.length = 0;
    const ran = await runOps(c, { "tool.call": ["echo", "later"] }, [
      { op: "tool", name: "echo", args: { n: 1, s: "two", a: [3] } },
      { op: "tool", name: "echo" },
      { op: "tool", name: "later", args: "x" },
    ]);
    deepEqual(ran.outcomes.map((o) => value(o)), [
      { echoed: { n: 1, s: "two", a: [3] } },
      { echoed: null },
      { later: "x" },
    ]);
    deepEqual(calls, [
      {
        args: { n: 1, s: "two", a: [3] },
        jobId: ran.accepted.job_id,
        traceId: ran.accepted.trace_id,
        aborted: false,
      },
      { args: null, jobId: ran.accepted.job_id, traceId: ran.accepted.trace_id, aborted: false },
    ]);
  });

  await t.step("a tool that throws is a tool_result INTERNAL_ERROR the agent catches", async () => {
    const ran = await runOps(c, { "tool.call": ["boom", "search"] }, [
      { op: "tool", name: "boom", args: {} },
      { op: "tool", name: "search", args: { q: "after" } },
    ]);
    const o = ran.outcomes[0];
    equal(failure(o), "LeaseError INTERNAL_ERROR");
    ok("error" in o && o.error.message.includes("the tool blew up"), JSON.stringify(o));
    equal((value(ran.outcomes[1]) as { query: string }).query, "after");
    deepEqual(toolErrors(ran), ["INTERNAL_ERROR"]);
    const err = ran.events.find((e) => e.kind === "tool_result" && e.body.error)!.body
      .error as Record<string, unknown>;
    equal(err.retryable, true);
  });

  await t.step("an uncaught tool failure ends the job", async () => {
    const ran = await run(c, {
      agent: "ops",
      input: { ops: [{ op: "tool", name: "boom" }], rethrow: true },
      lease_request: { "tool.call": ["boom"] },
    });
    equal(ran.terminal.type, "job.error");
    equal(ran.terminal.payload.code, "INTERNAL_ERROR");
    equal(ran.terminal.payload.retryable, true);
  });
});

Deno.test("model.use: model names are globs, and no model.use forbids models by default", async (t) => {
  await using server = await startServer({ agentsDir: LEASE_AGENTS });
  await using c = await connect(server.url);
  const models = [
    { op: "useModel", model: "tier-fast/a" },
    { op: "useModel", model: "tier-slow/a" },
    { op: "useModel", model: "tier-fast/a/b" },
  ];

  await t.step("a model inside the glob is allowed, others are PERMISSION_DENIED", async () => {
    const ran = await runOps(c, { "model.use": ["tier-fast/*"] }, models);
    equal(value(ran.outcomes[0]), null);
    deepEqual(ran.outcomes.slice(1).map((o) => failure(o)), [DENIED, DENIED]);
    deepEqual(toolErrors(ran), ["PERMISSION_DENIED", "PERMISSION_DENIED"]);
    equal(ran.accepted.payload.lease["model.use"][0], "tier-fast/*");
  });

  await t.step("a lease without model.use may invoke no model", async () => {
    const ran = await runOps(c, { "tool.call": ["search"] }, models);
    deepEqual(ran.outcomes.map((o) => failure(o)), [DENIED, DENIED, DENIED]);
    deepEqual(toolErrors(ran), Array(3).fill("PERMISSION_DENIED"));
  });
});

Deno.test("model.use: a runtime with requireModelLease false lets leases without model.use invoke models", async () => {
  await using server = await startServer({
    agentsDir: LEASE_AGENTS,
    jobs: { requireModelLease: false },
  });
  await using c = await connect(server.url);
  const open = await runOps(c, {}, [
    { op: "useModel", model: "tier-fast/a" },
    { op: "useModel", model: "tier-slow/a" },
  ]);
  deepEqual(open.outcomes.map((o) => value(o)), [null, null]);
  deepEqual(toolErrors(open), []);
  // A lease that does name models is still held to them.
  const named = await runOps(c, { "model.use": ["tier-fast/*"] }, [
    { op: "useModel", model: "tier-fast/a" },
    { op: "useModel", model: "tier-slow/a" },
  ]);
  equal(value(named.outcomes[0]), null);
  equal(failure(named.outcomes[1]), DENIED);
});

/** A server whose `hang` tool settles only when its job's signal aborts. */
async function hangServer(seen: boolean[]) {
  return await startServer({
    agentsDir: LEASE_AGENTS,
    tools: {
      hang: (_args: unknown, ctx: ToolContext) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener("abort", () => {
            seen.push(ctx.signal.aborted);
            resolve({ late: true });
          }, { once: true });
        }),
    },
  });
}

Deno.test("a tool still running when its job ends sees its signal abort", async () => {
  const seen: boolean[] = [];
  await using server = await hangServer(seen);
  await using c = await connect(server.url);
  const acc = await c.submit({
    agent: "ops",
    input: { ops: [{ op: "tool", name: "hang" }] },
    lease_request: { "tool.call": ["hang"] },
    max_runtime_sec: 1,
  });
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  const envs = await c.untilTerminal(acc.job_id!);
  equal(envs.at(-1)!.payload.code, "TIMEOUT");
  deepEqual(seen, [true]);
});

// A tool that settles after the job ended (here: when its signal aborts at
// the max_runtime_sec timeout) must not produce anything after the terminal.
Deno.test({
  name: "nothing of a job follows its terminal, even a tool that settles late",
}, async () => {
  const seen: boolean[] = [];
  await using server = await hangServer(seen);
  await using c = await connect(server.url);
  const acc = await c.submit({
    agent: "ops",
    input: { ops: [{ op: "tool", name: "hang" }] },
    lease_request: { "tool.call": ["hang"] },
    max_runtime_sec: 1,
  });
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  const envs = await c.untilTerminal(acc.job_id!);
  equal(envs.at(-1)!.payload.code, "TIMEOUT");
  await new Promise((r) => setTimeout(r, 300));
  deepEqual(
    c.inbox.filter((e) => e.job_id === acc.job_id).map((e) => [e.type, e.payload?.kind]),
    [],
    "no envelope of the job after its terminal",
  );
});
