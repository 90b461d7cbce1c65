/**
 * Provisioned credentials inside the sandbox, end to end: the real runtime
 * over a real WebSocket, agents in sandbox processes. `ctx.credentials`
 * holds the job's own credential (looked up by id and profile), a rotation
 * is visible to the running agent at once, a worker shared by jobs of one
 * principal never shows one job's credential to another and keeps none
 * after its job ended, the egress proxy refuses to carry a value anywhere
 * but its endpoint (header, `x-api-key`, query string, body), delegated
 * children get their own narrower credential and a parent's end leaves
 * none live, and an agent cannot forge the runtime's budget reports.
 */
import { deepEqual, equal, match, notEqual, ok } from "assert";
import { ALL_FEATURES, connect, type Env, type WsClient } from "../../testing/ws_client.ts";
import { gatewayRig } from "./_model_gateway.ts";

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function accepted(c: WsClient, payload: Record<string, unknown>): Promise<Env> {
  const acc = await c.submit(payload);
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  return acc;
}

async function result(c: WsClient, jobId: string): Promise<Env> {
  return (await c.untilTerminal(jobId, 30_000)).at(-1)!;
}

Deno.test("ctx.credentials holds the job's own credential, by id and by profile; a session without the feature gives its jobs none", async () => {
  await using r = await gatewayRig();
  const acc = await accepted(r.c, {
    agent: "creds",
    input: { mode: "show" },
    lease_request: { "model.use": ["gpt-4o-mini"] },
  });
  const [cred] = acc.payload.credentials;
  const done = await result(r.c, acc.job_id!);
  deepEqual(done.payload.result, {
    own: [await sha256(cred.value)],
    ids: [cred.id],
    by_id: cred.id,
    by_profile: cred.id,
    models: ["gpt-4o-mini"],
  });

  await using plain = await connect(
    r.server.url,
    "alice-token",
    ALL_FEATURES.filter((f) => f !== "provisioned_credentials"),
  );
  const bare = await accepted(plain, { agent: "creds", input: { mode: "show" } });
  equal(bare.payload.credentials, undefined);
  deepEqual((await result(plain, bare.job_id!)).payload.result.own, []);
});

Deno.test("ctx.fetch reaches the credential's endpoint without a net.fetch grant; other URLs stay refused", async () => {
  await using r = await gatewayRig();
  const acc = await accepted(r.c, {
    agent: "creds",
    input: { mode: "ctx-fetch", url: "http://127.0.0.1:9/elsewhere" },
  });
  const done = await result(r.c, acc.job_id!);
  deepEqual(done.payload.result, { status: 404, elsewhere: "PERMISSION_DENIED" });
  deepEqual(r.gw.calls.map((c) => [c.path, c.key]), [
    ["/v1/models", acc.payload.credentials[0].value],
  ]);
});

Deno.test("an upstream's budget refusal seen by the egress proxy (plain fetch) ends the job BUDGET_EXHAUSTED", async () => {
  await using r = await gatewayRig();
  const acc = await accepted(r.c, {
    agent: "creds",
    input: { mode: "raw-budget" },
    lease_request: { "model.use": ["gpt-4o-mini"], "cost.budget": ["USD:1"] },
  });
  const envs = await r.c.untilTerminal(acc.job_id!, 30_000);
  const terminal = envs.at(-1)!;
  equal(terminal.type, "job.error");
  equal(terminal.payload.code, "BUDGET_EXHAUSTED", JSON.stringify(terminal.payload));
  match(terminal.payload.message, /HTTP 429/);
  const remaining = envs.filter((e) => e.payload?.body?.name === "cost.budget.remaining");
  deepEqual(remaining.map((e) => [e.payload.body.value, e.payload.body.unit]), [[0, "USD"]]);
  deepEqual(r.gw.calls.map((c) => c.status), [429]);
});

Deno.test("a rotation reaches the running agent at once; the old value is revoked", async () => {
  await using r = await gatewayRig();
  const acc = await accepted(r.c, { agent: "creds", input: { mode: "rotate" } });
  const old = acc.payload.credentials[0].value;
  await r.c.next((e) => e.job_id === acc.job_id && e.payload?.body?.phase === "holding");
  await r.server.runtime.rotateCredentials(acc.job_id!);
  const rotated = await r.c.next((e) =>
    e.job_id === acc.job_id && e.payload?.body?.phase === "credential_rotated"
  );
  const fresh = rotated.payload.body.credential.value;
  notEqual(fresh, old);
  const done = await result(r.c, acc.job_id!);
  deepEqual(done.payload.result, { before: [await sha256(old)], after: [await sha256(fresh)] });
  ok(!r.prov.isActive(old), "the old value is revoked");
  ok(!r.prov.isActive(fresh), "and the new one with the job's end");
});

Deno.test("a shared worker: one job never sees another's credential, and a finished job's ctx holds none", async () => {
  await using r = await gatewayRig();
  const a = await accepted(r.c, { agent: "creds", input: { mode: "stash" } });
  const aDone = await result(r.c, a.job_id!);
  equal(aDone.type, "job.result");
  deepEqual(aDone.payload.result.own, [await sha256(a.payload.credentials[0].value)]);
  // The next job of the same key runs in the same worker (the agent shares it).
  const b = await accepted(r.c, { agent: "creds", input: { mode: "peek" } });
  const bDone = await result(r.c, b.job_id!);
  deepEqual(bDone.payload.result, {
    own: [await sha256(b.payload.credentials[0].value)],
    shared: true,
    other: [],
  });
});

for (const sandbox of ["process", "worker"] as const) {
  Deno.test(`the egress proxy (${sandbox} sandbox) refuses to present a credential anywhere but its endpoint; nothing reaches the other host`, async () => {
    await using r = await gatewayRig({ sandbox });
    const seen: string[] = [];
    await using elsewhere = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      seen.push(req.url);
      return new Response("ok");
    });
    const url = `http://127.0.0.1:${elsewhere.addr.port}/collect`;
    const lease = { "net.fetch": [`http://127.0.0.1:${elsewhere.addr.port}/**`] };
    for (const via of ["authorization", "x-api-key", "query", "body"]) {
      const acc = await accepted(r.c, {
        agent: "creds",
        input: { mode: "leak", url, via },
        lease_request: lease,
      });
      const done = await result(r.c, acc.job_id!);
      match(
        String(done.payload.result?.refused),
        /^NotCapable: credential cred_\w+ may be presented only to its endpoint, not to http:\/\/127\.0\.0\.1:\d+\/collect/,
        `${via}: ${JSON.stringify(done.payload)}`,
      );
    }
    deepEqual(seen, [], "no request carrying a credential left the proxy");
    // The same job may still reach that host without the credential.
    const acc = await accepted(r.c, {
      agent: "creds",
      input: { mode: "leak", url, via: "none" },
      lease_request: lease,
    });
    deepEqual((await result(r.c, acc.job_id!)).payload.result, { status: 200 });
    equal(seen.length, 1);
  });
}

Deno.test("a delegated child gets its own credential within its lease; a parent's end leaves none of its tree live", async () => {
  await using r = await gatewayRig();
  const lease = { "agent.delegate": ["creds"], "model.use": ["gpt-4o-mini", "claude-*"] };
  {
    const acc = await accepted(r.c, {
      agent: "cred-parent",
      input: { mode: "show" },
      lease_request: lease,
    });
    const done = await result(r.c, acc.job_id!);
    equal(done.type, "job.result", JSON.stringify(done.payload));
    const child = done.payload.result;
    equal(child.own.length, 1);
    notEqual(child.own[0], await sha256(acc.payload.credentials[0].value));
    deepEqual(child.models, ["gpt-4o-mini"], "constrained to the child's lease");
    const childIssue = r.prov.issued.find((i) => i.jobId !== acc.job_id);
    ok(childIssue);
    equal(await sha256(childIssue.value), child.own[0]);
    for (const i of r.prov.issued) ok(r.prov.revoked.has(i.handle), `${i.jobId} revoked`);
  }
  {
    const acc = await accepted(r.c, {
      agent: "cred-parent",
      input: { mode: "hold" },
      lease_request: lease,
    });
    const holding = await r.c.next((e) =>
      e.payload?.body?.phase === "holding" && e.job_id !== acc.job_id
    );
    r.c.send("job.cancel", {}, { job_id: acc.job_id });
    const terminal = await r.c.next((e) => e.job_id === acc.job_id && e.type === "job.error");
    equal(terminal.payload.code, "CANCELLED");
    // Checked the moment the parent's terminal arrived: the child may still be winding down.
    for (const jobId of [acc.job_id!, holding.job_id!]) {
      const values = r.prov.valuesOf(jobId);
      equal(values.length, 1, jobId);
      ok(!r.prov.isActive(values[0]), `${jobId}'s credential is revoked`);
    }
  }
});

Deno.test("an agent's own cost.budget.remaining metric is renamed, never charged", async () => {
  await using r = await gatewayRig();
  const acc = await accepted(r.c, {
    agent: "creds",
    input: { mode: "forge" },
    lease_request: { "model.use": ["gpt-4o-mini"], "cost.budget": ["USD:1"] },
  });
  const envs = await r.c.untilTerminal(acc.job_id!, 30_000);
  deepEqual(envs.at(-1)!.payload.result, "not exhausted");
  const names = envs.filter((e) => e.payload?.kind === "metric").map((e) => e.payload.body.name);
  deepEqual(names, ["agent.cost.budget.remaining", "agent.cost.budget.remaining"]);
});
