/**
 * Model calls end to end: the real runtime over a real WebSocket, agents in
 * sandbox processes calling `ctx.model()` with their job's provisioned
 * credential, against an OpenAI-compatible gateway stand-in speaking that
 * API's wire format (tests/jobs/_model_gateway.ts). Covers the reference
 * `chat@1.0.0` (streamed answer, usage and cost metrics, the budget's
 * remaining reports), `model.use` refusals before any request, a gateway's
 * model-not-allowed answer, budget refusals (402, 429, LiteLLM's 400)
 * translated to `BUDGET_EXHAUSTED`, the runtime's own budget stopping the
 * next call, slow responses cancelled and dropped ones failing, and the
 * job's `traceparent` on every request to the gateway.
 */
import { deepEqual, equal, match, ok } from "assert";
import { ALL_FEATURES, connect, type Env, type WsClient } from "../../testing/ws_client.ts";
import { gatewayRig } from "./_model_gateway.ts";

/** The bodies of a job's events of one kind. */
function bodies(envs: Env[], kind: string): Array<Record<string, unknown>> {
  return envs.filter((e) => e.type === "job.event" && e.payload.kind === kind)
    .map((e) => e.payload.body);
}

/** Submits, expects acceptance, and collects everything up to the terminal. */
async function run(c: WsClient, payload: Record<string, unknown>): Promise<Env[]> {
  const acc = await c.submit(payload);
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  return [acc, ...await c.untilTerminal(acc.job_id!, 30_000)];
}

Deno.test("chat@1.0.0 streams the model's answer as its result, reports usage and cost, and the budget's remaining follows the upstream's spend", async () => {
  await using r = await gatewayRig();
  const envs = await run(r.c, {
    agent: "chat",
    input: { model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hello" }] },
    lease_request: { "model.use": ["gpt-4o-mini"], "cost.budget": ["USD:0.50"] },
  });
  const accepted = envs[0].payload;
  const terminal = envs.at(-1)!;
  equal(terminal.type, "job.result", JSON.stringify(terminal.payload));
  const text = bodies(envs, "result_chunk").map((b) => b.data).join("");
  equal(text, "Hello, world!");
  ok(terminal.payload.result_id, "a streamed result");

  // The request the gateway saw: the job's own key, streamed, usage asked for.
  equal(r.gw.calls.length, 1);
  const [call] = r.gw.calls;
  equal(call.path, "/v1/chat/completions");
  equal(call.key, accepted.credentials[0].value);
  equal(call.body.stream, true);
  deepEqual(call.body.stream_options, { include_usage: true });
  deepEqual(call.body.messages, [{ role: "user", content: "Say hello" }]);
  // The gateway joins the job's trace, as ctx.fetch's upstreams do (§5.9).
  match(call.traceparent ?? "", new RegExp(`^00-${envs[0].trace_id}-[0-9a-f]{16}-01$`));

  const [toolCall] = bodies(envs, "tool_call");
  equal(toolCall.tool, "model.chat");
  deepEqual(toolCall.args, {
    model: "gpt-4o-mini",
    messages: 1,
    credential_id: accepted.credentials[0].id,
  });
  // deno-lint-ignore no-explicit-any
  const [toolResult] = bodies(envs, "tool_result") as any[];
  equal(toolResult.call_id, toolCall.call_id);
  equal(toolResult.result.finish_reason, "stop");
  const usage = toolResult.result.usage;
  equal(usage.completion_tokens, 4);
  const metrics = bodies(envs, "metric");
  const named = (n: string) => metrics.find((m) => m.name === n);
  equal(named("tokens.prompt")?.value, usage.prompt_tokens);
  equal(named("tokens.completion")?.value, 4);
  const cost = usage.total_tokens * r.gw.pricePerToken;
  equal(named("cost.model")?.unit, "USD");
  ok(Math.abs(Number(named("cost.model")?.value) - cost) < 1e-9);
  const remaining = named("cost.budget.remaining");
  ok(remaining, "the spend was material: the runtime reports what is left");
  ok(Math.abs(Number(remaining.value) - (0.5 - cost)) < 1e-9, JSON.stringify(remaining));
  match(JSON.stringify(bodies(envs, "log")), /gpt-4o-mini answered \(stop, \d+ tokens\)/);
});

Deno.test("a model outside model.use is refused before any request, as a tool_result error and the job's PERMISSION_DENIED", async () => {
  await using r = await gatewayRig();
  const envs = await run(r.c, {
    agent: "model-user",
    input: { model: "gpt-4" },
    lease_request: { "model.use": ["gpt-4o-mini"] },
  });
  const terminal = envs.at(-1)!;
  equal(terminal.type, "job.error");
  equal(terminal.payload.code, "PERMISSION_DENIED");
  equal(r.gw.calls.length, 0, "nothing reached the gateway");
  // deno-lint-ignore no-explicit-any
  const refusals = bodies(envs, "tool_result") as any[];
  equal(refusals.length, 1);
  equal(refusals[0].error.code, "PERMISSION_DENIED");
});

Deno.test("a job without a credential (its session did not negotiate them) gets a PERMISSION_DENIED tool_result from ctx.model", async () => {
  await using r = await gatewayRig();
  await using plain = await connect(
    r.server.url,
    "alice-token",
    ALL_FEATURES.filter((f) => f !== "provisioned_credentials"),
  );
  const envs = await run(plain, {
    agent: "model-user",
    input: { model: "gpt-4o-mini", catch: true },
    lease_request: { "model.use": ["gpt-4o-mini"] },
  });
  deepEqual(envs.at(-1)!.payload.result, { code: "PERMISSION_DENIED", done: 0 });
  // deno-lint-ignore no-explicit-any
  const [refusal] = bodies(envs, "tool_result") as any[];
  match(refusal.error.message, /no provisioned credential/);
  equal(r.gw.calls.length, 0);
});

Deno.test("the gateway's model-not-allowed answer (401) reaches the agent as PERMISSION_DENIED", async () => {
  await using r = await gatewayRig();
  r.gw.allowedModels = ["gpt-4o-mini"];
  const envs = await run(r.c, {
    agent: "model-user",
    input: { model: "claude-3", catch: true },
    lease_request: { "model.use": ["*"] },
  });
  const terminal = envs.at(-1)!;
  equal(terminal.type, "job.result", JSON.stringify(terminal.payload));
  deepEqual(terminal.payload.result, { code: "PERMISSION_DENIED", done: 0 });
  equal(r.gw.calls[0].status, 401);
  // deno-lint-ignore no-explicit-any
  const [refusal] = bodies(envs, "tool_result") as any[];
  equal(refusal.error.code, "PERMISSION_DENIED");
  match(refusal.error.message, /not allowed to access model/);
});

Deno.test("upstream budget refusals (402, 429 with a budget reason, LiteLLM's 400) become BUDGET_EXHAUSTED, whatever the agent makes of them", async () => {
  await using r = await gatewayRig();
  {
    // Uncaught: the agent's LeaseError ends the job with its code.
    const envs = await run(r.c, {
      agent: "model-user",
      input: { model: "budget-402" },
      lease_request: { "model.use": ["*"] },
    });
    const terminal = envs.at(-1)!;
    equal(terminal.payload.code, "BUDGET_EXHAUSTED", JSON.stringify(terminal.payload));
    match(terminal.payload.message, /402/);
  }
  {
    // The agent turns the refusal into an error of its own: the runtime still says why.
    const envs = await run(r.c, {
      agent: "model-user",
      input: { model: "budget-429", catch: true, then: "fail" },
      lease_request: { "model.use": ["*"], "cost.budget": ["USD:1.00"] },
    });
    const terminal = envs.at(-1)!;
    equal(terminal.type, "job.error");
    equal(terminal.payload.code, "BUDGET_EXHAUSTED", JSON.stringify(terminal.payload));
    match(terminal.payload.message, /Budget has been exceeded/);
    // The runtime's own counters follow the upstream: nothing is left.
    const remaining = bodies(envs, "metric").filter((m) => m.name === "cost.budget.remaining");
    deepEqual(remaining.map((m) => [m.value, m.unit]), [[0, "USD"]]);
  }
  {
    // LiteLLM's answer once a key's spend passed its max_budget: 400, type budget_exceeded.
    r.gw.maxBudgetUsd = 0.000_001;
    const envs = await run(r.c, {
      agent: "model-user",
      input: { model: "gpt-4o-mini", times: 3, catch: true },
      lease_request: { "model.use": ["*"] },
    });
    deepEqual(envs.at(-1)!.payload.result, { code: "BUDGET_EXHAUSTED", done: 1 });
    deepEqual(r.gw.calls.slice(-2).map((c) => c.status), [200, 400]);
  }
});

Deno.test("the job's own budget stops the next model call before it is sent", async () => {
  await using r = await gatewayRig();
  r.gw.pricePerToken = 1;
  const envs = await run(r.c, {
    agent: "model-user",
    input: { model: "gpt-4o-mini", times: 3, catch: true },
    lease_request: { "model.use": ["gpt-4o-mini"], "cost.budget": ["USD:5"] },
  });
  deepEqual(envs.at(-1)!.payload.result, { code: "BUDGET_EXHAUSTED", done: 1 });
  equal(r.gw.calls.length, 1, "the second call never reached the gateway");
});

Deno.test("a slow answer streams as thoughts and stops at cancel; a dropped one fails the call", async () => {
  await using r = await gatewayRig();
  {
    const acc = await r.c.submit({
      agent: "model-user",
      input: { model: "slow", then: "thoughts" },
      lease_request: { "model.use": ["slow"] },
    });
    equal(acc.type, "job.accepted");
    await r.c.next((e) => e.job_id === acc.job_id && e.payload?.kind === "thought", 20_000);
    r.c.send("job.cancel", {}, { job_id: acc.job_id });
    const terminal = (await r.c.untilTerminal(acc.job_id!, 30_000)).at(-1)!;
    equal(terminal.payload.code, "CANCELLED", JSON.stringify(terminal.payload));
  }
  {
    const envs = await run(r.c, {
      agent: "model-user",
      input: { model: "drop" },
      lease_request: { "model.use": ["drop"] },
    });
    const terminal = envs.at(-1)!;
    equal(terminal.type, "job.error");
    equal(terminal.payload.code, "INTERNAL_ERROR");
    // deno-lint-ignore no-explicit-any
    const [failed] = bodies(envs, "tool_result") as any[];
    equal(failed.error.code, "INTERNAL_ERROR");
  }
});

Deno.test("the README's model-calls walkthrough is agents/chat/chat.ts, the agent these tests run", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const section = readme.slice(readme.indexOf("### Model calls"));
  const shown = section.slice(section.indexOf("```ts\n") + 6, section.indexOf("```\n", 6));
  const file = await Deno.readTextFile(new URL("../../agents/chat/chat.ts", import.meta.url));
  const code = file.slice(file.indexOf("import ")).replace(
    "../../src/agent.ts",
    "@arcp/runtime/agent",
  );
  equal(shown, code);
});
