/**
 * Provisioned credentials (ARCP.md §5.8, §4) end to end: the real runtime
 * over a real WebSocket, LiteLlmProvisioner talking HTTP to a stand-in
 * LiteLLM gateway on loopback (tests/jobs/_gateway.ts). Covers feature
 * negotiation, issuing (scope, trace propagation, one value per job),
 * revocation on every terminal path before the terminal goes out, transient
 * and permanent revocation failures, retries after a crash and restart,
 * rotation, and that values never reach KV, logs, list_jobs, other
 * principals, replays of ended jobs or resumed history.
 */
import { deepEqual, equal, match, ok } from "assert";
import { LiteLlmProvisioner, type Logger, type RuntimeOptions } from "../../mod.ts";
import { tempKv } from "../../testing/temp_dir.ts";
import { type ChildServer, CLI_RUN, startChildServer, startServer } from "../../testing/server.ts";
import { ALL_FEATURES, connect, type Env, WsClient } from "../../testing/ws_client.ts";
import { FakeGateway, tick } from "./_gateway.ts";

const NO_CREDS = ALL_FEATURES.filter((f) => f !== "provisioned_credentials");

/** Quick retries, so failure paths settle within a test. */
const FAST = { retryIntervalMs: 100, maxBackoffMs: 300 };

type Creds = NonNullable<RuntimeOptions["credentials"]>;

/** A runtime whose credentials come from `gw` (loopback allowed unless `creds` says otherwise). */
function serverFor(
  gw: FakeGateway,
  creds: Partial<Creds> = {},
  options: Partial<RuntimeOptions> = {},
) {
  return startServer({
    ...options,
    credentials: {
      provisioner: new LiteLlmProvisioner({ adminUrl: gw.url, adminKey: gw.adminKey }),
      allowInsecure: true,
      ...creds,
    },
  });
}

/** A logger that keeps every line (message and fields) as text. */
function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const line = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    void lines.push(`${level} ${message} ${fields ? JSON.stringify(fields) : ""}`);
  return { logger: { info: line("INFO"), warn: line("WARN"), error: line("ERROR") }, lines };
}

/** Records, per job, the {@linkcode tick} at which the client received its terminal message. */
function stampTerminals(c: WsClient): Map<string, number> {
  const at = new Map<string, number>();
  c.ws.addEventListener("message", (m) => {
    const e = JSON.parse(String(m.data)) as Env;
    if ((e.type === "job.result" || e.type === "job.error") && e.job_id && !at.has(e.job_id)) {
      at.set(e.job_id, tick());
    }
  });
  return at;
}

/** Every KV entry of a file, key and value as text. */
async function dumpKv(kvPath: string): Promise<Array<{ key: Deno.KvKey; text: string }>> {
  const kv = await Deno.openKv(kvPath);
  try {
    const out: Array<{ key: Deno.KvKey; text: string }> = [];
    for await (const e of kv.list({ prefix: [] })) {
      out.push({ key: e.key, text: `${stringify(e.key)} ${stringify(e.value)}` });
    }
    return out;
  } finally {
    kv.close();
  }
}

function stringify(v: unknown): string {
  return JSON.stringify(v, (_k, x) => {
    if (typeof x === "bigint") return x.toString();
    if (x instanceof Uint8Array) return new TextDecoder().decode(x);
    return x;
  });
}

/** The outstanding revocation records in a KV file. */
async function revocations(kvPath: string): Promise<Array<Record<string, unknown>>> {
  const kv = await Deno.openKv(kvPath);
  try {
    const out: Array<Record<string, unknown>> = [];
    for await (const e of kv.list<Record<string, unknown>>({ prefix: ["v1", "revoke"] })) {
      out.push(e.value);
    }
    return out;
  } finally {
    kv.close();
  }
}

/** The key alias the gateway issued a job's (first) credential under. */
function aliasOf(gw: FakeGateway, jobId: string): string {
  const call = gw.generatesFor(jobId)[0];
  ok(call, `no /key/generate for ${jobId}`);
  return call.body.key_alias;
}

/** Submits and waits for the agent's own `sleeping` status, so the job is running. */
async function submitSleeping(c: WsClient, payload: Record<string, unknown>): Promise<Env> {
  const acc = await c.submit(payload);
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  await c.next((e) => e.job_id === acc.job_id && e.payload?.body?.phase === "sleeping");
  return acc;
}

/** Asserts the gateway deleted `alias` (HTTP 200) before the client got the job's terminal. */
function assertRevokedBefore(
  gw: FakeGateway,
  alias: string,
  terminalAt: number | undefined,
  what: string,
): void {
  ok(terminalAt !== undefined, `${what}: no terminal received`);
  const ok200 = gw.deletesOf(alias).find((c) => c.status === 200);
  ok(ok200, `${what}: the gateway never deleted ${alias}`);
  ok(
    ok200.at < terminalAt,
    `${what}: key deleted (tick ${ok200.at}) after the terminal (tick ${terminalAt})`,
  );
  ok(!gw.live.has(alias), `${what}: key still live`);
}

Deno.test("feature negotiation: advertised with a provisioner to loopback when insecure is allowed, otherwise not", async () => {
  await using gw = await FakeGateway.start();
  {
    await using server = await serverFor(gw);
    const c = new WsClient(server.url);
    const w = await c.hello("alice-token");
    ok(w.payload.capabilities.features.includes("provisioned_credentials"));
    // Negotiated = intersection: a client that does not ask does not get it.
    const d = new WsClient(server.url);
    const w2 = await d.hello("alice-token", NO_CREDS);
    ok(!w2.payload.capabilities.features.includes("provisioned_credentials"));
    await c.close();
    await d.close();
  }
  {
    await using server = await startServer();
    await using c = new WsClient(server.url);
    const w = await c.hello("alice-token");
    equal(w.type, "session.welcome");
    ok(!w.payload.capabilities.features.includes("provisioned_credentials"));
  }
  {
    // A provisioner but a plain ws:// connection and no allowInsecure: not advertised, nothing issued.
    await using server = await serverFor(gw, { allowInsecure: false });
    await using c = new WsClient(server.url);
    const w = await c.hello("alice-token");
    ok(!w.payload.capabilities.features.includes("provisioned_credentials"));
    const acc = await c.submit({ agent: "echo", input: "plain" });
    equal(acc.type, "job.accepted");
    equal(acc.payload.credentials, undefined);
    equal((await c.untilTerminal(acc.job_id!)).at(-1)!.type, "job.result");
  }
  equal(gw.callsTo("/key/generate").length, 0);
  equal(gw.callsTo("/key/delete").length, 0);
});

Deno.test("issue: job.accepted carries one lease-scoped bearer credential; the gateway got the scope, the admin key and the job's trace", async () => {
  await using gw = await FakeGateway.start();
  await using server = await serverFor(gw);
  await using c = await connect(server.url);
  const expiresAt = new Date(Date.now() + 60_000).toISOString();
  const lease = { "model.use": ["gpt-4o-mini", "claude-*"], "cost.budget": ["USD:2.50"] };
  const trace = "0af7651916cd43dd8448eb211c80319c";
  const acc = await c.submit({
    agent: "sleeper",
    input: { ms: 60_000 },
    lease_request: lease,
    lease_constraints: { expires_at: expiresAt },
  }, { trace_id: trace });
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  equal(acc.payload.trace_id, trace);
  const creds = acc.payload.credentials;
  ok(Array.isArray(creds));
  equal(creds.length, 1);
  const [cred] = creds;
  match(cred.id, /^cred_/);
  equal(cred.scheme, "bearer");
  match(cred.value, /^sk-virt-[0-9a-f]{32}$/);
  equal(cred.endpoint, `${gw.url}/v1`);
  equal(cred.profile, "openai");
  deepEqual(cred.constraints, {
    allowed_models: ["gpt-4o-mini", "claude-*"],
    max_spend: { currency: "USD", amount: 2.5 },
    expires_at: expiresAt,
  });
  deepEqual(Object.keys(cred).sort(), [
    "constraints",
    "endpoint",
    "id",
    "profile",
    "scheme",
    "value",
  ]);

  const [gen] = gw.generatesFor(acc.job_id!);
  ok(gen);
  equal(gw.callsTo("/key/generate").length, 1);
  equal(gen.status, 200);
  equal(gen.auth, `Bearer ${gw.adminKey}`);
  match(gen.body.key_alias, /^arcp-cred_/);
  ok(!gen.body.key_alias.includes(cred.value));
  deepEqual(gen.body.models, ["gpt-4o-mini", "claude-*"]);
  equal(gen.body.max_budget, 2.5);
  match(gen.body.duration, /^\d+s$/);
  const seconds = Number(gen.body.duration.slice(0, -1));
  ok(seconds >= 58 && seconds <= 61, `duration ${gen.body.duration}`);
  equal(gen.body.metadata.arcp_job_id, acc.job_id);
  match(gen.traceparent ?? "", new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
  equal(gw.live.get(gen.body.key_alias)?.key, cred.value);

  // A second job gets its own value under its own alias; no lease → no model/budget scope.
  const acc2 = await c.submit({ agent: "sleeper", input: { ms: 60_000 } });
  equal(acc2.type, "job.accepted");
  const cred2 = acc2.payload.credentials[0];
  ok(cred2.value !== cred.value, "one credential value per job");
  ok(cred2.id !== cred.id);
  const gen2 = gw.generatesFor(acc2.job_id!)[0];
  ok(gen2.body.key_alias !== gen.body.key_alias);
  equal(gen2.body.models, undefined);
  equal(gen2.body.max_budget, undefined);
  equal(gen2.body.duration, undefined);
  deepEqual(cred2.constraints, {});
  match(gen2.traceparent ?? "", new RegExp(`^00-${acc2.payload.trace_id}-[0-9a-f]{16}-01$`));

  // A session that did not negotiate the feature gets none, and nothing is issued for it.
  await using plain = await connect(server.url, "alice-token", NO_CREDS);
  const acc3 = await plain.submit({ agent: "echo", input: "no creds" });
  equal(acc3.type, "job.accepted");
  equal(acc3.payload.credentials, undefined);
  equal(gw.generatesFor(acc3.job_id!).length, 0);
  equal((await plain.untilTerminal(acc3.job_id!)).at(-1)!.type, "job.result");

  for (const a of [acc, acc2]) c.send("job.cancel", {}, { job_id: a.job_id });
  for (const a of [acc, acc2]) await c.untilTerminal(a.job_id!);
  equal(gw.live.size, 0, "every key revoked");
  equal(gw.callsTo("/key/generate").length, 2);
});

Deno.test("revocation on every terminal path (success, error, cancelled, timed_out, LEASE_EXPIRED) happens before the terminal is sent", async () => {
  await using gw = await FakeGateway.start();
  await using server = await serverFor(gw);
  await using c = await connect(server.url);
  const terminals = stampTerminals(c);

  const submit = async (payload: Record<string, unknown>) => {
    const acc = await c.submit(payload);
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    equal(acc.payload.credentials?.length, 1);
    return acc.job_id!;
  };
  const cases: Array<[string, string, string, string | undefined]> = [];
  const expiring = await submit({
    agent: "sleeper",
    input: { ms: 60_000 },
    lease_constraints: { expires_at: new Date(Date.now() + 1500).toISOString() },
  });
  cases.push(["lease expiry", expiring, "error", "LEASE_EXPIRED"]);
  const timing = await submit({ agent: "sleeper", input: { ms: 60_000 }, max_runtime_sec: 1 });
  cases.push(["max_runtime_sec", timing, "timed_out", "TIMEOUT"]);
  const echo = await submit({ agent: "echo", input: "hi" });
  cases.push(["success", echo, "success", undefined]);
  const failer = await submit({ agent: "failer", input: { message: "boom" } });
  cases.push(["agent error", failer, "error", "INTERNAL_ERROR"]);
  const cancelled = await submit({ agent: "sleeper", input: { ms: 60_000 } });
  await c.next((e) => e.job_id === cancelled && e.payload?.body?.phase === "sleeping");
  c.send("job.cancel", { reason: "test" }, { job_id: cancelled });
  cases.push(["cancel", cancelled, "cancelled", "CANCELLED"]);

  for (const [what, jobId, status, code] of cases) {
    const envs = await c.untilTerminal(jobId, 15_000);
    const terminal = envs.at(-1)!;
    equal(terminal.payload.final_status, status, `${what}: ${JSON.stringify(terminal.payload)}`);
    if (code) equal(terminal.payload.code, code, what);
    if (what === "cancel") ok(envs.some((e) => e.type === "job.cancelled"));
    assertRevokedBefore(gw, aliasOf(gw, jobId), terminals.get(jobId), what);
    equal(gw.deletesOf(aliasOf(gw, jobId))[0].auth, `Bearer ${gw.adminKey}`);
  }
  equal(gw.live.size, 0);
  await server.close();
  deepEqual(await revocations(server.kvPath), [], "no outstanding revocation left");
});

Deno.test("transient revocation failures (503) are retried with backoff until the key is gone; KV keeps the record until then", async () => {
  await using gw = await FakeGateway.start();
  const { logger, lines } = captureLogger();
  await using server = await serverFor(gw, FAST, { logger });
  await using c = await connect(server.url);
  const terminals = stampTerminals(c);
  gw.failDeletes(2, 503);
  // What KV holds when each retry reaches the gateway (the runtime is waiting on that request).
  const seenByRetries: Array<Array<Record<string, unknown>>> = [];
  gw.onCall = async (call) => {
    if (call.path === "/key/delete" && gw.deletesOf(call.body.key_aliases[0]).length > 1) {
      seenByRetries.push(await revocations(server.kvPath));
    }
  };
  const acc = await c.submit({ agent: "echo", input: "retry me" });
  equal(acc.type, "job.accepted");
  const value = acc.payload.credentials[0].value;
  const alias = aliasOf(gw, acc.job_id!);
  const terminal = (await c.untilTerminal(acc.job_id!)).at(-1)!;
  equal(terminal.type, "job.result");
  // The first attempt failed before the terminal went out.
  const first = gw.deletesOf(alias)[0];
  equal(first.status, 503);
  ok(first.at < terminals.get(acc.job_id!)!);

  await gw.until(() => !gw.live.has(alias), 5000, "the key deleted after retries");
  const deletes = gw.deletesOf(alias);
  deepEqual(deletes.map((d) => d.status), [503, 503, 200]);
  // Backoff: retries are spaced by the (capped) backoff, not fired at every 100 ms tick.
  for (let i = 1; i < deletes.length; i++) {
    const gap = deletes[i].ms - deletes[i - 1].ms;
    ok(gap >= 250, `retry ${i} came ${gap} ms after the previous attempt`);
  }
  // While the gateway kept failing, the record stayed: no secret, not marked failed, attempts counted.
  equal(seenByRetries.length, 2);
  for (const [i, records] of seenByRetries.entries()) {
    equal(records.length, 1, JSON.stringify(records));
    equal(records[0].handle, alias);
    equal(records[0].job_id, acc.job_id);
    equal(records[0].credential_id, acc.payload.credentials[0].id);
    equal(records[0].failed, undefined);
    equal(records[0].attempts, i + 1);
    ok(!JSON.stringify(records).includes(value));
  }
  await new Promise((r) => setTimeout(r, 400));
  equal(gw.deletesOf(alias).length, 3, "no more attempts once deleted");
  deepEqual(await revocations(server.kvPath), []);
  ok(!lines.some((l) => l.includes(value) || l.includes(gw.adminKey)));
});

Deno.test("a permanent revocation failure (400) is logged without the secret and the record is kept as failed", async () => {
  await using gw = await FakeGateway.start();
  const { logger, lines } = captureLogger();
  await using server = await serverFor(gw, FAST, { logger });
  await using c = await connect(server.url);
  gw.failDeletes(1, 400);
  const acc = await c.submit({ agent: "echo", input: "refused" });
  equal(acc.type, "job.accepted");
  const cred = acc.payload.credentials[0];
  const alias = aliasOf(gw, acc.job_id!);
  equal((await c.untilTerminal(acc.job_id!)).at(-1)!.type, "job.result");
  // Retrying cannot help: no further attempts.
  await new Promise((r) => setTimeout(r, 600));
  deepEqual(gw.deletesOf(alias).map((d) => d.status), [400]);
  ok(gw.live.has(alias), "the gateway still has the key (an operator must revoke it)");

  const logged = lines.filter((l) =>
    l.startsWith("ERROR") && /revocation failed permanently/.test(l)
  );
  equal(logged.length, 1, lines.join("\n"));
  ok(logged[0].includes(acc.job_id!));
  ok(logged[0].includes(cred.id));
  ok(logged[0].includes(alias), "the log names the handle so an operator can revoke it");
  match(logged[0], /400/);
  for (const l of lines) {
    ok(!l.includes(cred.value), `a log line carries the credential: ${l}`);
    ok(!l.includes(gw.adminKey), `a log line carries the admin key: ${l}`);
  }

  await server.close();
  const records = await revocations(server.kvPath);
  equal(records.length, 1);
  equal(records[0].handle, alias);
  equal(records[0].credential_id, cred.id);
  match(String(records[0].failed), /400/);
  ok(!JSON.stringify(records).includes(cred.value));
});

Deno.test("an upstream that cannot issue: the submit is refused retryably and the alias is revoked anyway", async () => {
  await using gw = await FakeGateway.start();
  const { logger, lines } = captureLogger();
  await using server = await serverFor(gw, FAST, { logger });
  await using c = await connect(server.url);
  gw.failGenerates(1, 500);
  const refused = await c.submit({ agent: "echo", input: "x" });
  equal(refused.type, "job.error", JSON.stringify(refused.payload));
  equal(refused.payload.code, "INTERNAL_ERROR");
  equal(refused.payload.retryable, true);
  ok(!JSON.stringify(refused.payload).includes(gw.adminKey));
  const alias = gw.callsTo("/key/generate")[0].body.key_alias;
  // The gateway might have issued before failing: the handle is revoked regardless.
  await gw.until(() => gw.deletesOf(alias).length > 0, 5000, "delete of the failed alias");
  await gw.until(() => gw.deletesOf(alias).at(-1)!.status === 404, 1000, "already gone");
  // The next submit works.
  const acc = await c.submit({ agent: "echo", input: "y" });
  equal(acc.type, "job.accepted");
  equal((await c.untilTerminal(acc.job_id!)).at(-1)!.type, "job.result");
  await server.close();
  deepEqual(await revocations(server.kvPath), []);
  ok(!lines.some((l) => l.includes(gw.adminKey)));
});

Deno.test("a slow /key/generate is not revoked from under the job by the retry loop", async () => {
  await using gw = await FakeGateway.start();
  await using server = await serverFor(gw, { retryIntervalMs: 20, maxBackoffMs: 300 });
  await using c = await connect(server.url);
  const terminals = stampTerminals(c);
  gw.generateDelayMs = 300;
  const acc = await c.submit({ agent: "sleeper", input: { ms: 300 } });
  equal(acc.type, "job.accepted");
  const alias = aliasOf(gw, acc.job_id!);
  // While the job is live its key is usable.
  ok(gw.live.has(alias), "the key was revoked while its job was live");
  equal((await c.untilTerminal(acc.job_id!)).at(-1)!.type, "job.result");
  assertRevokedBefore(gw, alias, terminals.get(acc.job_id!), "slow issue");
  await server.close();
  deepEqual(await revocations(server.kvPath), []);
});

Deno.test("after SIGKILL, a restarted runtime on the same KV revokes the dead job's key, retrying while the gateway is down", async () => {
  await using gw = await FakeGateway.start();
  await using tmp = await tempKv("arcp_cred_restart_");
  const { kvPath } = tmp;
  const args = [
    "--credentials",
    "litellm",
    "--litellm-url",
    gw.url,
    "--allow-insecure-credentials",
  ];
  const env = { ARCP_LITELLM_ADMIN_KEY: gw.adminKey };
  let child: ChildServer | undefined;
  try {
    child = await startChildServer(kvPath, args, env);
    let value: string;
    let jobId: string;
    {
      const c = new WsClient(child.url);
      const w = await c.hello("alice-token");
      ok(w.payload.capabilities.features.includes("provisioned_credentials"));
      const acc = await submitSleeping(c, { agent: "sleeper", input: { ms: 60_000 } });
      jobId = acc.job_id!;
      value = acc.payload.credentials[0].value;
      equal(gw.live.get(aliasOf(gw, jobId))?.key, value);
      equal((await child.stop("SIGKILL")).signal, "SIGKILL");
      ok(!child.output().includes(value) && !child.output().includes(gw.adminKey));
      child = undefined;
      await c.close();
    }
    const alias = aliasOf(gw, jobId);
    ok(gw.live.has(alias), "nobody revoked the key of the killed process");
    equal(gw.deletesOf(alias).length, 0);
    const before = await revocations(kvPath);
    equal(before.length, 1);
    equal(before[0].handle, alias);

    // The gateway is down when the new process starts: its first attempt fails.
    await gw.setDown(true);
    child = await startChildServer(kvPath, args, env);
    const pending = await revocations(kvPath);
    equal(pending.length, 1, "the record survives a failed attempt");
    ok((pending[0].attempts as number) >= 1, JSON.stringify(pending));
    equal(pending[0].failed, undefined);
    await gw.setDown(false);
    await gw.until(() => !gw.live.has(alias), 10_000, "the restarted runtime deleting the key");
    equal(gw.deletesOf(alias).at(-1)!.status, 200);
    equal(gw.deletesOf(alias).at(-1)!.auth, `Bearer ${gw.adminKey}`);
    const deadline = Date.now() + 3000;
    while ((await revocations(kvPath)).length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    deepEqual(await revocations(kvPath), [], "the record is gone once the key is deleted");
    // The job itself was ended as interrupted.
    await using c = await connect(child.url);
    const req = c.send("session.list_jobs", {});
    const list = await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
    equal(list.payload.jobs.find((j: { job_id: string }) => j.job_id === jobId)?.status, "error");
    ok(!child.output().includes(value) && !child.output().includes(gw.adminKey));
  } finally {
    await child?.stop("SIGKILL");
  }
});

Deno.test("rotation: same id, new value to the client, the old key deleted (retried if the gateway fails), the new one at the end", async () => {
  await using gw = await FakeGateway.start();
  await using server = await serverFor(gw, FAST);
  await using c = await connect(server.url);
  const terminals = stampTerminals(c);
  const acc = await submitSleeping(c, { agent: "sleeper", input: { ms: 60_000 } });
  const jobId = acc.job_id!;
  const old = acc.payload.credentials[0];
  const oldAlias = aliasOf(gw, jobId);

  await server.runtime.rotateCredentials(jobId);
  const rotated = await c.next((e) =>
    e.job_id === jobId && e.type === "job.event" && e.payload.body?.phase === "credential_rotated"
  );
  equal(rotated.payload.kind, "status");
  equal(rotated.trace_id, acc.payload.trace_id);
  ok(typeof rotated.event_seq === "number");
  equal(rotated.payload.body.credential.id, old.id);
  const fresh = rotated.payload.body.credential.value;
  match(fresh, /^sk-virt-/);
  ok(fresh !== old.value);
  deepEqual(Object.keys(rotated.payload.body.credential).sort(), ["id", "value"]);

  const gens = gw.generatesFor(jobId);
  equal(gens.length, 2);
  const newAlias = gens[1].body.key_alias;
  ok(newAlias !== oldAlias);
  equal(gw.live.get(newAlias)?.key, fresh);
  match(gens[1].traceparent ?? "", new RegExp(`^00-${acc.payload.trace_id}-`));
  equal(gw.deletesOf(oldAlias).at(-1)!.status, 200);
  ok(!gw.live.has(oldAlias), "the old key is deleted at rotation");

  // A second rotation whose old-key delete fails transiently: retried while the job runs.
  gw.failDeletes(1, 503);
  await server.runtime.rotateCredentials(jobId);
  const again = await c.next((e) =>
    e.job_id === jobId && e.type === "job.event" && e.payload.body?.phase === "credential_rotated"
  );
  const third = again.payload.body.credential.value;
  ok(third !== fresh);
  equal(gw.deletesOf(newAlias)[0].status, 503);
  await gw.until(
    () => !gw.live.has(newAlias),
    3000,
    "the rotated-out key deleted while the job is still live",
  );
  const thirdAlias = gw.generatesFor(jobId)[2].body.key_alias;
  ok(gw.live.has(thirdAlias), "the current key stays live");

  c.send("job.cancel", {}, { job_id: jobId });
  equal((await c.untilTerminal(jobId)).at(-1)!.payload.final_status, "cancelled");
  assertRevokedBefore(gw, thirdAlias, terminals.get(jobId), "rotated credential at the end");
  equal(gw.live.size, 0);
  // Nothing to rotate once the job ended.
  let refused: { code?: string } | undefined;
  try {
    await server.runtime.rotateCredentials(jobId);
  } catch (err) {
    refused = err as { code?: string };
  }
  equal(refused?.code, "JOB_NOT_FOUND");
  equal(gw.generatesFor(jobId).length, 3);
});

Deno.test("values never reach KV, logs, list_jobs, another principal, ended-job replays or resumed history", async () => {
  await using gw = await FakeGateway.start();
  const { logger, lines } = captureLogger();
  const server = await serverFor(gw, FAST, { logger });
  try {
    const c1 = new WsClient(server.url);
    const w1 = await c1.hello("alice-token");
    const submit = {
      agent: "sleeper",
      input: { ms: 60_000 },
      idempotency_key: "cred-idem",
    };
    const acc = await submitSleeping(c1, submit);
    const jobId = acc.job_id!;
    const v1 = acc.payload.credentials[0].value as string;
    const credId = acc.payload.credentials[0].id as string;

    // Idempotent resubmit from another session of the principal while live: the same credential, nothing new issued.
    await using c2 = await connect(server.url);
    const replay = await c2.submit(submit);
    equal(replay.type, "job.accepted");
    equal(replay.job_id, jobId);
    deepEqual(replay.payload.credentials, acc.payload.credentials);
    equal(gw.generatesFor(jobId).length, 1, "a replay never re-issues");

    // job.subscribed from another session of the same principal carries them while live.
    await using c3 = await connect(server.url);
    c3.send("job.subscribe", { job_id: jobId, history: true });
    const subscribed = await c3.next((e) =>
      e.type === "job.subscribed" || e.type === "session.error"
    );
    equal(subscribed.type, "job.subscribed", JSON.stringify(subscribed.payload));
    deepEqual(subscribed.payload.credentials, acc.payload.credentials);

    // Another principal: refused, and never sees a value.
    await using bob = await connect(server.url, "bob-token");
    bob.send("job.subscribe", { job_id: jobId, history: true });
    const denied = await bob.next((e) => e.type === "job.subscribed" || e.type === "session.error");
    equal(denied.type, "session.error");
    equal(denied.payload.code, "PERMISSION_DENIED");
    const bobReplay = await bob.submit(submit);
    ok(bobReplay.job_id !== jobId, "idempotency keys are per principal");
    equal(gw.generatesFor(bobReplay.job_id!).length, 1);
    bob.send("job.cancel", {}, { job_id: bobReplay.job_id });
    await bob.untilTerminal(bobReplay.job_id!);

    // Rotation: the submitter gets the new value; the logged copy is redacted.
    await server.runtime.rotateCredentials(jobId);
    const rotated = await c1.next((e) =>
      e.job_id === jobId && e.payload?.body?.phase === "credential_rotated"
    );
    const v2 = rotated.payload.body.credential.value as string;
    ok(v2 !== v1);

    // list_jobs entries carry no credentials.
    const req = c1.send("session.list_jobs", {});
    const list = await c1.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
    const entry = list.payload.jobs.find((j: { job_id: string }) => j.job_id === jobId);
    ok(entry);
    equal(entry.credentials, undefined);
    ok(!JSON.stringify(list.payload).includes("sk-virt-"));

    // Resume while live: the replayed history holds only redacted copies, then the current value is re-delivered.
    await c1.close();
    const r = new WsClient(server.url);
    const rw = await r.hello("alice-token", ALL_FEATURES, {
      session_id: c1.sessionId,
      resume_token: w1.payload.resume_token,
      last_event_seq: 0,
    });
    equal(rw.type, "session.welcome", JSON.stringify(rw.payload));
    const redelivered = await r.next((e) =>
      e.job_id === jobId && e.payload?.body?.phase === "credential_rotated" &&
      e.payload.body.credential.value !== "[redacted]"
    );
    equal(redelivered.payload.body.credential.id, credId);
    equal(redelivered.payload.body.credential.value, v2, "the current credential");
    const replayed = r.seen.filter((e) => e.event_seq !== undefined && e !== redelivered);
    ok(replayed.length > 0);
    ok(
      replayed.every((e) => e.event_seq! < redelivered.event_seq!),
      "re-delivery follows the replay",
    );
    const replayedRotations = replayed.filter((e) =>
      e.payload?.body?.phase === "credential_rotated"
    );
    equal(replayedRotations.length, 1);
    equal(replayedRotations[0].payload.body.credential.value, "[redacted]");
    equal(replayedRotations[0].payload.body.credential.id, credId);
    ok(!JSON.stringify(replayed).includes("sk-virt-"), "no value in the replayed history");

    // A subscriber joining after the rotation gets the current value in job.subscribed; its history replay is redacted.
    await using c5 = await connect(server.url);
    c5.send("job.subscribe", { job_id: jobId, history: true });
    const sub5 = await c5.next((e) => e.type === "job.subscribed" || e.type === "session.error");
    equal(sub5.type, "job.subscribed", JSON.stringify(sub5.payload));
    deepEqual(sub5.payload.credentials, [{ ...acc.payload.credentials[0], value: v2 }]);
    const history5 = await c5.next((e) =>
      e.job_id === jobId && e.payload?.body?.phase === "credential_rotated"
    );
    equal(history5.payload.body.credential.value, "[redacted]");
    equal(history5.payload.body.credential.id, credId);

    r.send("job.cancel", {}, { job_id: jobId });
    equal((await r.untilTerminal(jobId)).at(-1)!.payload.final_status, "cancelled");
    await c3.untilTerminal(jobId);
    ok(!gw.live.has(aliasOf(gw, jobId)));
    equal(gw.live.size, 0);

    // After the end: subscribe and idempotent resubmit carry no credentials and issue nothing.
    await using c4 = await connect(server.url);
    c4.send("job.subscribe", { job_id: jobId });
    const late = await c4.next((e) => e.type === "job.subscribed" || e.type === "session.error");
    equal(late.type, "job.subscribed");
    equal(late.payload.current_status, "cancelled");
    equal(late.payload.credentials, undefined);
    const lateReplay = await c4.submit(submit);
    equal(lateReplay.type, "job.accepted");
    equal(lateReplay.job_id, jobId);
    equal(lateReplay.payload.credentials, undefined);
    equal(gw.generatesFor(jobId).length, 2, "initial + one rotation, nothing more");
    await r.close();
    await c1.close();

    const values = [...gw.issued];
    equal(values.length, 3);
    await server.close();
    // No value (or the admin key) anywhere in KV, the logs, or what bob received.
    const entries = await dumpKv(server.kvPath);
    ok(entries.length > 0);
    for (const { key, text } of entries) {
      ok(!text.includes("sk-virt-"), `KV entry ${stringify(key)} holds a credential value`);
      ok(!text.includes(gw.adminKey), `KV entry ${stringify(key)} holds the admin key`);
    }
    ok(entries.some((e) => e.text.includes("[redacted]")), "the rotation was logged, redacted");
    ok(lines.length > 0);
    for (const l of lines) {
      for (const v of values) ok(!l.includes(v), `log line carries a value: ${l}`);
      ok(!l.includes(gw.adminKey), `log line carries the admin key: ${l}`);
    }
    for (const e of bob.seen) {
      if (e.job_id === bobReplay.job_id) continue;
      ok(!JSON.stringify(e).includes(v1) && !JSON.stringify(e).includes(v2));
    }
  } finally {
    await server.close(true);
  }
});

Deno.test("serve --credentials litellm without ARCP_LITELLM_ADMIN_KEY exits 2 and says why", async () => {
  const env = Deno.env.toObject();
  delete env.ARCP_LITELLM_ADMIN_KEY;
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        ...CLI_RUN,
        "serve",
        "--port",
        "0",
        "--kv",
        ":memory:",
        ...args,
      ],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  const missingKey = await run(["--credentials", "litellm", "--litellm-url", "http://127.0.0.1:9"]);
  equal(missingKey.code, 2, missingKey.stderr);
  match(missingKey.stderr, /ARCP_LITELLM_ADMIN_KEY/);
  match(missingKey.stderr, /--credentials litellm/);
  const bogus = await run(["--credentials", "vault"]);
  equal(bogus.code, 2, bogus.stderr);
  match(bogus.stderr, /--credentials: expected litellm or local/);
});
