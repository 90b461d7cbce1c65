/**
 * Delegation (ARCP.md §5.7, §4 job.accepted, §5.4, §5.9) against a real
 * runtime over a real WebSocket: `ctx.delegate` through the reference
 * `delegator` and the fixture agents in `tests/fixtures/delegation_agents`.
 *
 * @module
 */
import { deepEqual, equal, match, ok } from "assert";
import { ROOT, startServer } from "../../testing/server.ts";
import { connect, type Env, type WsClient } from "../../testing/ws_client.ts";

const AGENTS = `${ROOT}/tests/fixtures/delegation_agents`;

type Lease = Record<string, string[]>;
type Event = { kind: string; ts: string; body: Record<string, unknown> };

/** A job and everything delegated from it, as its session received them. */
interface Tree {
  /** The root's `job.accepted`. */
  accepted: Env;
  /** The root's envelopes (accepted first, terminal last). */
  root: Env[];
  /** The root's terminal envelope. */
  terminal: Env;
  /** Every descendant's `job.accepted`, in arrival order. */
  children: Env[];
  /** Every envelope of the tree, in arrival order. */
  all: Env[];
  /** One job's envelopes. */
  of(jobId: string): Env[];
}

function isTerminal(e: Env): boolean {
  return (e.type === "job.result" || e.type === "job.error") &&
    e.payload?.details?.refused === undefined;
}

/** The tree under `rootId`, from everything the client has received. */
function treeOf(c: WsClient, rootId: string): Tree {
  const ids = new Set([rootId]);
  const children: Env[] = [];
  const all: Env[] = [];
  for (const e of c.seen) {
    if (e.type === "job.accepted" && ids.has(e.payload.parent_job_id)) {
      ids.add(e.payload.job_id);
      children.push(e);
    }
    if (e.job_id !== undefined && ids.has(e.job_id)) all.push(e);
  }
  const of = (id: string) => all.filter((e) => e.job_id === id);
  const root = of(rootId);
  return {
    accepted: root.find((e) => e.type === "job.accepted")!,
    root,
    terminal: root.findLast(isTerminal)!,
    children,
    all,
    of,
  };
}

/** Waits until the root and every descendant seen so far have ended. */
async function settle(c: WsClient, rootId: string, ms = 20_000): Promise<Tree> {
  const deadline = Date.now() + ms;
  while (true) {
    const tree = treeOf(c, rootId);
    const ids = [rootId, ...tree.children.map((a) => a.job_id!)];
    const open = ids.filter((id) => !tree.of(id).some(isTerminal));
    if (open.length === 0) return tree;
    const known = new Set(ids);
    await c.next(
      (e) =>
        (e.job_id !== undefined && known.has(e.job_id)) ||
        (e.type === "job.accepted" && known.has(e.payload.parent_job_id)),
      Math.max(1, deadline - Date.now()),
      `end of ${open.join(", ")}`,
    );
  }
}

/**
 * Submits a job (it must be accepted: a burst of them may be refused as
 * `sandbox_busy` on a loaded machine, and is resubmitted) and waits for it and
 * its descendants to end.
 */
async function run(
  c: WsClient,
  payload: Record<string, unknown>,
  ms = 20_000,
): Promise<Tree> {
  const acc = await c.submitRetrying(payload);
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  return await settle(c, acc.job_id!, ms);
}

/** The `job.event` payloads among some envelopes. */
function events(envs: Env[]): Event[] {
  return envs.filter((e) => e.type === "job.event").map((e) => e.payload as Event);
}

/** The events of one kind. */
function kind(envs: Env[], k: string): Array<Record<string, unknown>> {
  return events(envs).filter((e) => e.kind === k).map((e) => e.body);
}

/** The error payloads of a job's failed `tool_result` events. */
function toolErrors(envs: Env[]): Array<Record<string, unknown> & { code: string }> {
  return kind(envs, "tool_result").filter((b) => b.error).map((b) =>
    b.error as Record<string, unknown> & { code: string }
  );
}

/** The `cost.budget.remaining` reports of a job, as `[unit, value]`. */
function remaining(envs: Env[]): Array<[string, number]> {
  return kind(envs, "metric")
    .filter((b) => b.name === "cost.budget.remaining")
    .map((b) => [b.unit as string, b.value as number]);
}

/** Lists the session's jobs (one page is plenty here). */
async function listJobs(c: WsClient): Promise<Array<Record<string, unknown>>> {
  const req = c.send("session.list_jobs", { limit: 500 });
  const res = await c.next(
    (e) =>
      (e.type === "session.jobs" && e.payload.request_id === req.id) || e.type === "session.error",
    10_000,
    "session.jobs",
  );
  equal(res.type, "session.jobs", JSON.stringify(res.payload));
  return res.payload.jobs;
}

/** Waits for a job's status event with this phase. */
async function phase(c: WsClient, jobId: string, name: string): Promise<Env> {
  return await c.next(
    (e) =>
      e.job_id === jobId && e.type === "job.event" && e.payload.kind === "status" &&
      e.payload.body.phase === name,
    10_000,
    `${name} of ${jobId}`,
  );
}

/** Waits for the `job.accepted` of a child of `parentId`. */
async function childAccepted(c: WsClient, parentId: string): Promise<Env> {
  return await c.next(
    (e) => e.type === "job.accepted" && e.payload.parent_job_id === parentId,
    10_000,
    `child of ${parentId}`,
  );
}

function isoIn(ms: number): string {
  return new Date(Date.now() + ms).toISOString();
}

/** Asserts a refusal: the error `tool_result`, no `delegate` event, no child. */
function assertRefused(tree: Tree, code: string): Record<string, unknown> {
  const errors = toolErrors(tree.root);
  equal(errors.length, 1, JSON.stringify(errors));
  equal(errors[0].code, code, JSON.stringify(errors[0]));
  equal(typeof errors[0].message, "string");
  ok((errors[0].message as string).length > 0);
  const result = kind(tree.root, "tool_result").find((b) => b.error)!;
  match(String(result.call_id), /^del_/);
  deepEqual(kind(tree.root, "delegate"), [], "no delegate event for a refused delegation");
  deepEqual(tree.children, [], "no child job for a refused delegation");
  return errors[0];
}

Deno.test("delegation on a server with the default limits", async (t) => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using c = await connect(server.url);
  const checkNoChild: string[] = [];

  await t.step("delegator → echo: the child runs in the parent's session and trace", async () => {
    const tree = await run(c, {
      agent: "delegator",
      input: { agent: "echo", input: { hello: "world" }, lease: {} },
      lease_request: { "agent.delegate": ["echo"] },
    });
    const parentId = tree.accepted.job_id!;
    const trace = tree.accepted.trace_id!;
    match(trace, /^[0-9a-f]{32}$/);

    equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
    deepEqual(tree.terminal.payload.result, {
      delegated_to: "echo",
      result: { echo: { hello: "world" }, version: "2.0.0" },
    });

    const delegates = kind(tree.root, "delegate");
    equal(delegates.length, 1);
    const del = delegates[0];
    match(String(del.delegate_id), /^del_/);
    equal(del.agent, "echo");
    deepEqual(del.input, { hello: "world" });
    deepEqual(del.lease_request, {});

    equal(tree.children.length, 1);
    const acc = tree.children[0];
    const childId = acc.job_id!;
    equal(acc.payload.job_id, childId);
    equal(acc.payload.parent_job_id, parentId);
    equal(acc.payload.delegate_id, del.delegate_id);
    equal(acc.payload.agent, "echo@2.0.0");
    deepEqual(acc.payload.lease, {});
    equal(acc.payload.trace_id, trace);
    equal(acc.trace_id, trace);
    equal(acc.session_id, c.sessionId);
    equal(acc.event_seq, undefined);

    // Order: the delegate event, then the child's accepted, then its events,
    // its terminal, and only then the parent's result.
    const at = (e: Env) => tree.all.indexOf(e);
    const delEnv = tree.root.find((e) => e.type === "job.event" && e.payload.kind === "delegate")!;
    const child = tree.of(childId);
    ok(at(delEnv) < at(acc), "delegate event precedes the child's job.accepted");
    equal(child[0], acc, "the child's job.accepted precedes its events");
    deepEqual(child.map((e) => e.type), ["job.accepted", "job.event", "job.result"]);
    equal(child[1].payload.kind, "status");
    equal(child[1].payload.body.phase, "running");
    deepEqual(child[2].payload, {
      final_status: "success",
      result: { echo: { hello: "world" }, version: "2.0.0" },
    });
    ok(at(child[2]) < at(tree.terminal), "the child ends before the parent");

    for (const e of child) {
      equal(e.trace_id, trace, `child ${e.type} carries the parent's trace_id`);
      equal(e.session_id, c.sessionId);
    }
    for (const e of tree.root) equal(e.trace_id, trace);

    // One gap-free event_seq space for both jobs.
    const seqs = c.seen.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq!);
    deepEqual(seqs, seqs.map((_, i) => i + 1));

    const jobs = await listJobs(c);
    const p = jobs.find((j) => j.job_id === parentId)!;
    const ch = jobs.find((j) => j.job_id === childId)!;
    ok(p && ch, "both jobs are listed");
    ok(p.parent_job_id === undefined || p.parent_job_id === null, JSON.stringify(p));
    equal(ch.parent_job_id, parentId);
    equal(ch.status, "success");
    equal(ch.agent, "echo@2.0.0");
    equal(ch.trace_id, trace);
    equal(p.status, "success");
  });

  await t.step("agent.delegate matches name@version as well as the bare name", async () => {
    const tree = await run(c, {
      agent: "planner",
      input: {
        delegations: [
          { agent: "echo@1.0.0", input: 1 },
          { agent: "echo", input: 2 },
          { agent: "echo@2.0.0", input: 3 },
        ],
      },
      lease_request: { "agent.delegate": ["echo@1.*"] },
    });
    equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
    const [v1, bare, v2] = tree.terminal.payload.result;
    deepEqual(v1, { ok: true, value: { echo: 1, version: "1.0.0" } });
    equal(bare.error.code, "PERMISSION_DENIED");
    equal(bare.error.name, "LeaseError");
    equal(v2.error.code, "PERMISSION_DENIED");
    deepEqual(tree.children.map((a) => a.payload.agent), ["echo@1.0.0"]);
    deepEqual(toolErrors(tree.root).map((e) => e.code), ["PERMISSION_DENIED", "PERMISSION_DENIED"]);
  });

  await t.step("agent.delegate not covering the child → PERMISSION_DENIED, no child", async () => {
    const cases: Array<[string, Lease]> = [
      ["other agent granted", { "agent.delegate": ["echo"] }],
      ["no agent.delegate", {}],
      ["empty agent.delegate", { "agent.delegate": [] }],
    ];
    const trees = await Promise.all(cases.map(([, lease]) =>
      run(c, {
        agent: "delegator",
        input: { agent: "sleeper", input: { ms: 10 }, lease: {} },
        lease_request: lease,
      })
    ));
    for (const [i, tree] of trees.entries()) {
      const what = cases[i][0];
      equal(tree.terminal.type, "job.result", `${what}: ${JSON.stringify(tree.terminal.payload)}`);
      equal(tree.terminal.payload.result.delegated_to, "sleeper");
      equal(tree.terminal.payload.result.refused, "PERMISSION_DENIED", what);
      assertRefused(tree, "PERMISSION_DENIED");
      checkNoChild.push(tree.accepted.job_id!);
    }
  });

  await t.step("an unknown agent → AGENT_NOT_AVAILABLE, no child", async () => {
    const tree = await run(c, {
      agent: "delegator",
      input: { agent: "nope", lease: {} },
      lease_request: { "agent.delegate": ["**"] },
    });
    equal(tree.terminal.payload.result.refused, "AGENT_NOT_AVAILABLE");
    assertRefused(tree, "AGENT_NOT_AVAILABLE");
  });

  await t.step(
    "a child lease that is not a subset → LEASE_SUBSET_VIOLATION, no child",
    async () => {
      const parentExpires = isoIn(10 * 60_000);
      const parentLease: Lease = {
        "agent.delegate": ["echo"],
        "fs.read": ["/srv/data/**"],
        "model.use": ["gpt-4o-mini"],
        "tool.call": ["search"],
        "cost.budget": ["USD:1.00"],
      };
      const cases: Array<[string, Lease, string | undefined, string]> = [
        ["fs.write the parent lacks", { "fs.write": ["/srv/data/out"] }, undefined, "fs.write"],
        ["fs.read outside the parent's", { "fs.read": ["/etc/passwd"] }, undefined, "fs.read"],
        ["a broader fs.read glob", { "fs.read": ["/srv/**"] }, undefined, "fs.read"],
        ["a glob crossing segments", { "fs.read": ["/srv/*/x/**"] }, undefined, "fs.read"],
        ["model.use outside the parent's", { "model.use": ["gpt-4o"] }, undefined, "model.use"],
        ["model.use wildcard", { "model.use": ["gpt-*"] }, undefined, "model.use"],
        [
          "tool.call the parent lacks",
          { "tool.call": ["search", "fetch"] },
          undefined,
          "tool.call",
        ],
        ["agent.delegate broader", { "agent.delegate": ["*"] }, undefined, "agent.delegate"],
        [
          "cost.budget above the parent's",
          { "cost.budget": ["USD:1.50"] },
          undefined,
          "cost.budget",
        ],
        [
          "cost.budget amounts adding up above",
          { "cost.budget": ["USD:0.60", "USD:0.60"] },
          undefined,
          "cost.budget",
        ],
        ["a currency the parent lacks", { "cost.budget": ["EUR:0.10"] }, undefined, "cost.budget"],
        [
          "expires_at later than the parent's",
          {},
          isoIn(60 * 60_000),
          "lease_constraints.expires_at",
        ],
      ];
      const trees = await Promise.all(cases.map(([, lease, expires]) =>
        run(c, {
          agent: "delegator",
          input: { agent: "echo", input: "x", lease, ...(expires ? { expires_at: expires } : {}) },
          lease_request: parentLease,
          lease_constraints: { expires_at: parentExpires },
        })
      ));
      for (const [i, tree] of trees.entries()) {
        const [what, , , ns] = cases[i];
        equal(
          tree.terminal.type,
          "job.result",
          `${what}: ${JSON.stringify(tree.terminal.payload)}`,
        );
        deepEqual(
          { ...tree.terminal.payload.result, message: undefined },
          { delegated_to: "echo", refused: "LEASE_SUBSET_VIOLATION", message: undefined },
          what,
        );
        const err = assertRefused(tree, "LEASE_SUBSET_VIOLATION");
        equal(err.retryable, false, what);
        equal((err.details as { namespace?: string })?.namespace, ns, what);
        checkNoChild.push(tree.accepted.job_id!);
      }
    },
  );

  await t.step("a subset lease is granted; expires_at is inherited when omitted", async () => {
    const parentExpires = isoIn(10 * 60_000);
    const childExpires = isoIn(5 * 60_000);
    const parentLease: Lease = {
      "agent.delegate": ["echo"],
      "fs.read": ["/srv/data/**"],
      "model.use": ["gpt-4o-mini", "claude-*"],
      "tool.call": ["search"],
      "cost.budget": ["USD:1.00"],
    };
    const childLease: Lease = {
      "fs.read": ["/srv/data/*.csv"],
      "model.use": ["gpt-4o-mini", "claude-haiku"],
      "tool.call": ["search"],
      "cost.budget": ["USD:0.25"],
    };
    const [inherit, own] = await Promise.all([undefined, childExpires].map((expires) =>
      run(c, {
        agent: "delegator",
        input: { agent: "echo", input: "x", lease: childLease, expires_at: expires },
        lease_request: parentLease,
        lease_constraints: { expires_at: parentExpires },
      })
    ));
    for (const [tree, expires] of [[inherit, parentExpires], [own, childExpires]] as const) {
      equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
      deepEqual(tree.terminal.payload.result, {
        delegated_to: "echo",
        result: { echo: "x", version: "2.0.0" },
      });
      equal(tree.children.length, 1);
      const acc = tree.children[0].payload;
      deepEqual(acc.lease, childLease);
      deepEqual(acc.budget, { USD: 0.25 });
      deepEqual(acc.lease_constraints, { expires_at: expires });
      deepEqual(toolErrors(tree.root), []);
    }
    const del = kind(own.root, "delegate")[0];
    deepEqual(del.lease_request, childLease);
    deepEqual(del.lease_constraints, { expires_at: childExpires });
    equal(kind(inherit.root, "delegate")[0].lease_constraints, undefined);
  });

  await t.step("a child without cost.budget inherits the parent's remaining budget", async () => {
    const tree = await run(c, {
      agent: "planner",
      input: {
        spend: { value: 0.7, unit: "USD" },
        delegations: [
          { agent: "echo", input: "too much", lease: { "cost.budget": ["USD:0.50"] } },
          { agent: "echo", input: "exact", lease: { "cost.budget": ["USD:0.30"] } },
          { agent: "echo", input: "inherit", lease: {} },
        ],
      },
      lease_request: { "agent.delegate": ["echo"], "cost.budget": ["USD:1.00"] },
    });
    equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
    const [tooMuch, exact, inherit] = tree.terminal.payload.result;
    equal(tooMuch.error.code, "LEASE_SUBSET_VIOLATION", "checked against the remaining 0.30");
    match(tooMuch.error.message, /0\.3/);
    deepEqual(exact, { ok: true, value: { echo: "exact", version: "2.0.0" } });
    deepEqual(inherit, { ok: true, value: { echo: "inherit", version: "2.0.0" } });
    deepEqual(tree.children.map((a) => a.payload.budget), [{ USD: 0.3 }, { USD: 0.3 }]);
    const inherited = tree.children[1].payload.lease["cost.budget"];
    equal(inherited.length, 1);
    match(inherited[0], /^USD:0\.30*$/);
    deepEqual(remaining(tree.root), [["USD", 0.3]]);
  });

  await t.step("an exhausted parent may not delegate: BUDGET_EXHAUSTED, no child", async () => {
    const tree = await run(c, {
      agent: "planner",
      input: { spend: { value: 1, unit: "USD" }, delegations: [{ agent: "echo", lease: {} }] },
      lease_request: { "agent.delegate": ["echo"], "cost.budget": ["USD:1.00"] },
    });
    equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
    equal(tree.terminal.payload.result[0].error.code, "BUDGET_EXHAUSTED");
    assertRefused(tree, "BUDGET_EXHAUSTED");
  });

  await t.step("a child's cost is charged to the parent's budget too", async () => {
    const tree = await run(c, {
      agent: "delegator",
      input: {
        agent: "spender",
        input: { steps: 5, cost: 0.5, currency: "USD" },
        lease: { "tool.call": ["search"], "cost.budget": ["USD:0.80"] },
      },
      lease_request: {
        "agent.delegate": ["spender"],
        "tool.call": ["search"],
        "cost.budget": ["USD:1.00"],
      },
    });
    equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
    deepEqual(tree.terminal.payload.result, {
      delegated_to: "spender",
      result: { completed_steps: 2, stopped: "BUDGET_EXHAUSTED" },
    });
    deepEqual(tree.accepted.payload.budget, { USD: 1 });
    equal(tree.children.length, 1);
    const acc = tree.children[0];
    deepEqual(acc.payload.budget, { USD: 0.8 });
    const child = tree.of(acc.job_id!);
    deepEqual(remaining(child), [["USD", 0.3], ["USD", -0.2]]);
    deepEqual(toolErrors(child).map((e) => e.code), ["BUDGET_EXHAUSTED"]);
    // The parent's counter goes 1.00 → 0.50 → 0.00 with the child's spending.
    deepEqual(remaining(tree.root), [["USD", 0.5], ["USD", 0]]);
  });

  await t.step("a failing child rejects ctx.delegate with its error code", async () => {
    const caught = await run(c, {
      agent: "planner",
      input: { delegations: [{ agent: "failer", input: { message: "boom" } }] },
      lease_request: { "agent.delegate": ["failer"] },
    });
    equal(caught.terminal.type, "job.result", JSON.stringify(caught.terminal.payload));
    const [outcome] = caught.terminal.payload.result;
    equal(outcome.error.name, "LeaseError");
    equal(outcome.error.code, "INTERNAL_ERROR");
    match(outcome.error.message, /boom/);
    equal(caught.children.length, 1);
    const child = caught.of(caught.children[0].job_id!);
    const end = child.at(-1)!;
    equal(end.type, "job.error");
    equal(end.payload.final_status, "error");
    equal(end.payload.code, "INTERNAL_ERROR");
    equal(end.payload.retryable, true);
    equal(end.trace_id, caught.accepted.trace_id);

    const uncaught = await run(c, {
      agent: "planner",
      input: { rethrow: true, delegations: [{ agent: "failer", input: { message: "boom" } }] },
      lease_request: { "agent.delegate": ["failer"] },
    });
    equal(uncaught.terminal.type, "job.error", JSON.stringify(uncaught.terminal.payload));
    equal(uncaught.terminal.payload.final_status, "error");
    equal(uncaught.terminal.payload.code, "INTERNAL_ERROR");
    equal(uncaught.terminal.payload.retryable, true);
    equal(uncaught.children.length, 1);
    equal(uncaught.of(uncaught.children[0].job_id!).at(-1)!.payload.code, "INTERNAL_ERROR");
  });

  await t.step("cancelling the parent cancels its live child", async () => {
    const acc = await c.submit({
      agent: "delegator",
      input: { agent: "sleeper", input: { ms: 30_000 }, lease: {} },
      lease_request: { "agent.delegate": ["sleeper"] },
    });
    equal(acc.type, "job.accepted");
    const parentId = acc.job_id!;
    const child = await childAccepted(c, parentId);
    await phase(c, child.job_id!, "sleeping");
    const t0 = Date.now();
    c.send("job.cancel", { reason: "stop" }, { job_id: parentId });
    const tree = await settle(c, parentId, 10_000);
    ok(Date.now() - t0 < 8_000, `took ${Date.now() - t0} ms`);
    equal(tree.terminal.type, "job.error");
    equal(tree.terminal.payload.final_status, "cancelled");
    equal(tree.terminal.payload.code, "CANCELLED");
    ok(tree.root.some((e) => e.type === "job.cancelled"));
    const ch = tree.of(child.job_id!);
    const cancelledAt = ch.findIndex((e) => e.type === "job.cancelled");
    ok(cancelledAt > 0, "the child gets job.cancelled");
    equal(ch[cancelledAt].trace_id, acc.trace_id);
    const end = ch.at(-1)!;
    equal(end.type, "job.error");
    equal(end.payload.final_status, "cancelled");
    equal(end.payload.code, "CANCELLED");
    equal(end.payload.retryable, false);
    equal(ch.filter(isTerminal).length, 1);
    ok(!ch.some((e) => e.type === "job.result"));
  });

  await t.step("the parent timing out (max_runtime_sec) cancels its live child", async () => {
    const acc = await c.submit({
      agent: "delegator",
      input: { agent: "sleeper", input: { ms: 30_000 }, lease: {} },
      lease_request: { "agent.delegate": ["sleeper"] },
      max_runtime_sec: 1,
    });
    equal(acc.type, "job.accepted");
    const child = await childAccepted(c, acc.job_id!);
    const tree = await settle(c, acc.job_id!, 10_000);
    equal(tree.terminal.type, "job.error");
    equal(tree.terminal.payload.final_status, "timed_out");
    equal(tree.terminal.payload.code, "TIMEOUT");
    const ch = tree.of(child.job_id!);
    ok(ch.some((e) => e.type === "job.cancelled"), "the child gets job.cancelled");
    equal(ch.at(-1)!.type, "job.error");
    equal(ch.at(-1)!.payload.code, "CANCELLED");
    equal(ch.at(-1)!.payload.final_status, "cancelled");
  });

  await t.step("a parent that returns while its child runs cancels the child", async () => {
    const tree = await run(c, {
      agent: "planner",
      input: { detachMs: 500, delegations: [{ agent: "sleeper", input: { ms: 30_000 } }] },
      lease_request: { "agent.delegate": ["sleeper"] },
    }, 10_000);
    equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
    equal(tree.terminal.payload.result, "detached");
    equal(tree.children.length, 1);
    const ch = tree.of(tree.children[0].job_id!);
    ok(ch.some((e) => e.type === "job.cancelled"), "the child gets job.cancelled");
    equal(ch.at(-1)!.payload.code, "CANCELLED");
  });

  await t.step({
    name: "a parent that returns at once after delegating still cancels the child",
    fn: async () => {
      const tree = await run(c, {
        agent: "planner",
        input: { detachMs: 0, delegations: [{ agent: "sleeper", input: { ms: 3000 } }] },
        lease_request: { "agent.delegate": ["sleeper"] },
      }, 10_000);
      equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
      // A child accepted after its parent ended shows up late; wait for it too.
      await new Promise((r) => setTimeout(r, 500));
      const late = await settle(c, tree.accepted.job_id!, 10_000);
      for (const acc of late.children) {
        const end = late.of(acc.job_id!).at(-1)!;
        equal(end.type, "job.error", "the child does not outlive its parent");
        equal(end.payload.code, "CANCELLED");
      }
    },
  });

  await t.step("default depth cap: four levels below a submitted job, no more", async () => {
    const tree = await run(c, {
      agent: "recurse",
      input: { levels: 6 },
      lease_request: { "agent.delegate": ["recurse"] },
    });
    equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
    deepEqual(tree.terminal.payload.result, {
      levels: 6,
      child: {
        levels: 5,
        child: {
          levels: 4,
          child: { levels: 3, child: { levels: 2, refused: "PERMISSION_DENIED" } },
        },
      },
    });
    equal(tree.children.length, 4);
    const deepest = tree.of(tree.children[3].job_id!);
    const [err] = toolErrors(deepest);
    equal(err.code, "PERMISSION_DENIED");
    deepEqual(err.details, { cap: "delegation_depth" });
    // Each child is the previous one's.
    const chain = [tree.accepted, ...tree.children].map((a) => a.job_id);
    deepEqual(tree.children.map((a) => a.payload.parent_job_id), chain.slice(0, -1));
    for (const e of tree.all) equal(e.trace_id, tree.accepted.trace_id);
  });

  await t.step("refused delegations never created a job", async () => {
    const jobs = await listJobs(c);
    for (const id of checkNoChild) {
      ok(jobs.some((j) => j.job_id === id));
      deepEqual(jobs.filter((j) => j.parent_job_id === id), [], `children of ${id}`);
    }
    const health = await (await fetch(`${server.http}/healthz`)).json();
    equal(health.live_jobs, 0, "no job is left running");
  });
});

Deno.test("delegation depth cap (jobs.maxDelegationDepth: 1)", async () => {
  await using server = await startServer({ agentsDir: AGENTS, jobs: { maxDelegationDepth: 1 } });
  await using c = await connect(server.url);
  const tree = await run(c, {
    agent: "recurse",
    input: { levels: 3 },
    lease_request: { "agent.delegate": ["recurse"] },
  });
  equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
  deepEqual(tree.terminal.payload.result, {
    levels: 3,
    child: { levels: 2, refused: "PERMISSION_DENIED" },
  });
  equal(tree.children.length, 1, "only the first level starts");
  const child = tree.of(tree.children[0].job_id!);
  const [err] = toolErrors(child);
  equal(err.code, "PERMISSION_DENIED");
  equal((err.details as { cap?: string }).cap, "delegation_depth");
  deepEqual(kind(child, "delegate"), []);
  deepEqual(toolErrors(tree.root), []);
});

Deno.test("live-children cap (jobs.maxChildrenPerJob: 2)", async (t) => {
  await using server = await startServer({ agentsDir: AGENTS, jobs: { maxChildrenPerJob: 2 } });
  await using c = await connect(server.url);
  const sleeper = (ms: number) => ({ agent: "sleeper", input: { ms } });

  /** Three live sleepers from one parent; the third must be refused. */
  const third = async (staggerMs: number) => {
    const tree = await run(c, {
      agent: "planner",
      input: {
        parallel: true,
        staggerMs,
        delegations: [sleeper(1500), sleeper(1500), sleeper(1500)],
      },
      lease_request: { "agent.delegate": ["sleeper"] },
    });
    equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
    const outcomes = tree.terminal.payload.result;
    deepEqual(outcomes.slice(0, 2), [
      { ok: true, value: { slept_ms: 1500 } },
      { ok: true, value: { slept_ms: 1500 } },
    ]);
    equal(outcomes[2].error?.code, "PERMISSION_DENIED", JSON.stringify(outcomes[2]));
    equal(tree.children.length, 2);
    const [err] = toolErrors(tree.root);
    equal(err.code, "PERMISSION_DENIED");
    equal((err.details as { cap?: string }).cap, "children");
    equal(kind(tree.root, "delegate").length, 2);
  };

  await t.step("a third live delegation is refused (started 300 ms apart)", () => third(300));

  await t.step({
    name: "a third delegation started at the same moment is refused",
    fn: () => third(0),
  });

  await t.step("the cap counts live children only", async () => {
    const tree = await run(c, {
      agent: "planner",
      input: { delegations: [sleeper(10), sleeper(10), sleeper(10)] },
      lease_request: { "agent.delegate": ["sleeper"] },
    });
    equal(tree.terminal.type, "job.result", JSON.stringify(tree.terminal.payload));
    deepEqual(tree.terminal.payload.result.map((o: { ok?: boolean }) => o.ok), [true, true, true]);
    equal(tree.children.length, 3);
  });
});
