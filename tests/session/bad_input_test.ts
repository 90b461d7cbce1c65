import { deepEqual, equal, match, ok } from "assert";
import { startServer, type TestServer } from "../../testing/server.ts";
import { connect, type Env, type WsClient } from "../../testing/ws_client.ts";
import { RawWs } from "../../testing/raw_ws.ts";

/** Waits for the next session.error. */
function sessionError(c: WsClient): Promise<Env> {
  return c.next((e) => e.type === "session.error", 10_000, "session.error");
}

/** Checks the session still works: ping → pong and an echo submit succeeds. */
async function stillWorks(c: WsClient): Promise<void> {
  c.send("session.ping", { nonce: "still-there", sent_at: new Date().toISOString() });
  const pong = await c.next((e) => e.type === "session.pong");
  equal(pong.payload.ping_nonce, "still-there");
  const acc = await c.submit({ agent: "echo", input: "ok" });
  equal(acc.type, "job.accepted");
  equal((await c.untilTerminal(acc.job_id!)).at(-1)!.type, "job.result");
  equal(c.closeCode, undefined);
}

/** Runs one bad frame against a fresh session and checks the error and the session afterwards. */
async function badFrame(
  server: TestServer,
  send: (c: WsClient) => void,
  code: string,
  message: RegExp,
): Promise<Env> {
  await using c = await connect(server.url);
  send(c);
  const e = await sessionError(c);
  equal(e.payload.code, code);
  equal(e.payload.retryable, false);
  match(e.payload.message, message);
  equal(e.session_id, c.sessionId);
  await stillWorks(c);
  ok(!c.inbox.some((x) => x.type === "session.error"), "more than one error");
  return e;
}

Deno.test("a frame that is not JSON gets INVALID_REQUEST and the session goes on", async () => {
  await using server = await startServer();
  await badFrame(server, (c) => c.sendRaw("{not json"), "INVALID_REQUEST", /JSON/);
});

Deno.test("a JSON array gets INVALID_REQUEST and the session goes on", async () => {
  await using server = await startServer();
  await badFrame(server, (c) => c.sendRaw("[1,2,3]"), "INVALID_REQUEST", /object/);
});

Deno.test("a JSON scalar gets INVALID_REQUEST and the session goes on", async () => {
  await using server = await startServer();
  await badFrame(server, (c) => c.sendRaw("42"), "INVALID_REQUEST", /object/);
});

Deno.test("a wrong arcp version gets INVALID_REQUEST naming arcp and the session goes on", async () => {
  await using server = await startServer();
  await badFrame(
    server,
    (c) => c.send("session.list_jobs", {}, { arcp: "2.0" }),
    "INVALID_REQUEST",
    /arcp/,
  );
});

Deno.test("an envelope without an id gets INVALID_REQUEST naming id", async () => {
  await using server = await startServer();
  await badFrame(
    server,
    (c) => c.send("session.list_jobs", {}, { id: undefined }),
    "INVALID_REQUEST",
    /\bid\b/,
  );
});

Deno.test("a payload that is not an object gets INVALID_REQUEST naming payload", async () => {
  await using server = await startServer();
  await badFrame(
    server,
    (c) => c.send("session.list_jobs", "list please"),
    "INVALID_REQUEST",
    /payload/,
  );
});

Deno.test("an unknown type gets INVALID_REQUEST naming type and the session goes on", async () => {
  await using server = await startServer();
  await badFrame(
    server,
    (c) => c.send("job.teleport", {}),
    "INVALID_REQUEST",
    /type.*job\.teleport/,
  );
});

Deno.test("a missing session_id after the hello gets INVALID_REQUEST naming session_id", async () => {
  await using server = await startServer();
  await badFrame(
    server,
    (c) => c.send("session.list_jobs", {}, { session_id: undefined }),
    "INVALID_REQUEST",
    /session_id/,
  );
});

Deno.test("a session_id that names another session gets INVALID_REQUEST naming session_id", async () => {
  await using server = await startServer();
  await using other = await connect(server.url);
  await badFrame(
    server,
    (c) => c.send("session.list_jobs", {}, { session_id: other.sessionId }),
    "INVALID_REQUEST",
    /session_id/,
  );
  // The other session was not disturbed.
  equal(other.inbox.length, 0);
});

Deno.test('session.list_jobs with limit "x" gets INVALID_REQUEST naming payload.limit', async () => {
  await using server = await startServer();
  await badFrame(
    server,
    (c) => c.send("session.list_jobs", { limit: "x" }),
    "INVALID_REQUEST",
    /payload\.limit/,
  );
});

Deno.test("session.list_jobs with a non-array status filter gets INVALID_REQUEST naming it", async () => {
  await using server = await startServer();
  await badFrame(
    server,
    (c) => c.send("session.list_jobs", { filter: { status: "running" } }),
    "INVALID_REQUEST",
    /payload\.filter\.status/,
  );
});

Deno.test("job.cancel without job_id gets INVALID_REQUEST naming job_id", async () => {
  await using server = await startServer();
  await badFrame(server, (c) => c.send("job.cancel", {}), "INVALID_REQUEST", /job_id/);
});

Deno.test("a second session.hello on a welcomed session gets INVALID_REQUEST", async () => {
  await using server = await startServer();
  await badFrame(
    server,
    (c) =>
      c.send("session.hello", {
        client: { name: "test", version: "0" },
        auth: { scheme: "bearer", token: "alice-token" },
      }, { session_id: c.sessionId }),
    "INVALID_REQUEST",
    /hello/,
  );
});

Deno.test("a malformed lease_request is a job.error INVALID_REQUEST naming the field, and the session goes on", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const e = await c.submit({
    agent: "echo",
    input: null,
    lease_request: { "fs.read": "not-an-array" },
  });
  equal(e.type, "job.error");
  match(e.job_id!, /^job_/);
  equal(typeof e.event_seq, "number");
  equal(e.payload.final_status, "error");
  equal(e.payload.code, "INVALID_REQUEST");
  equal(e.payload.retryable, false);
  match(e.payload.message, /payload\.lease_request\.fs\.read/);
  await stillWorks(c);
});

Deno.test("other malformed submits are job.error INVALID_REQUEST naming the field", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ input: 1 }, /payload\.agent/],
    [{ agent: 7, input: 1 }, /payload\.agent/],
    [{ agent: "echo", input: 1, max_runtime_sec: 0 }, /payload\.max_runtime_sec/],
    [{ agent: "echo", input: 1, max_runtime_sec: 1.5 }, /payload\.max_runtime_sec/],
    [{ agent: "echo", input: 1, idempotency_key: "" }, /payload\.idempotency_key/],
    [{ agent: "echo", input: 1, idempotency_key: "k".repeat(257) }, /payload\.idempotency_key/],
    [{ agent: "echo", input: "x".repeat(600 * 1024) }, /payload\.input/],
    [{ agent: "echo", input: 1, lease_request: { "fs.raed": ["/tmp/**"] } }, /fs\.raed/],
    [
      { agent: "echo", input: 1, lease_constraints: { expires_at: "2020-01-01T00:00:00Z" } },
      /payload\.lease_constraints\.expires_at/,
    ],
    [
      { agent: "echo", input: 1, lease_constraints: { expires_at: "2999-01-01T00:00:00+01:00" } },
      /payload\.lease_constraints\.expires_at/,
    ],
  ];
  for (const [payload, message] of cases) {
    const e = await c.submit(payload);
    equal(e.type, "job.error", JSON.stringify(payload));
    equal(e.payload.code, "INVALID_REQUEST", JSON.stringify(payload));
    match(e.payload.message, message);
  }
  await stillWorks(c);
});

Deno.test("job envelopes of one session stay gap-free through rejected submits", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  await c.submit({ agent: "echo", input: 1, lease_request: { "fs.read": "nope" } });
  c.sendRaw("not json");
  await sessionError(c);
  await stillWorks(c);
  const seqs = c.seen.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq);
  deepEqual(seqs, seqs.map((_, i) => i + 1));
  ok(seqs.length >= 3);
});

Deno.test("unknown top-level envelope fields are ignored", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const acc = await c.submit({ agent: "echo", input: "fwd" }, {
    x_future_field: { any: "thing" },
    extensions: { "x-vendor.test": true },
  });
  equal(acc.type, "job.accepted");
  equal((await c.untilTerminal(acc.job_id!)).at(-1)!.type, "job.result");
  equal(c.seen.filter((e) => e.type === "session.error").length, 0);
});

Deno.test("binary frames are ignored", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  c.ws.send(new TextEncoder().encode(JSON.stringify({ arcp: "1.1", id: "b", type: "nope" })));
  c.ws.send(new Uint8Array([0, 1, 2, 255]));
  await stillWorks(c);
  equal(c.seen.filter((e) => e.type === "session.error").length, 0);
});

Deno.test("a 4 MiB frame closes only that socket, with 1009; another session keeps working", async () => {
  await using server = await startServer();
  await using victim = await connect(server.url);
  await using bystander = await connect(server.url);
  const running = await bystander.submit({ agent: "ticker", input: { count: 5, interval_ms: 20 } });
  equal(running.type, "job.accepted");
  victim.sendRaw(
    JSON.stringify({
      arcp: "1.1",
      id: "big",
      type: "session.ping",
      session_id: victim.sessionId,
      payload: { nonce: "x".repeat(4 * 1024 * 1024), sent_at: new Date().toISOString() },
    }),
  );
  equal(await victim.closed(10_000), 1009);
  equal((await bystander.untilTerminal(running.job_id!)).at(-1)!.type, "job.result");
  await stillWorks(bystander);
  // And the server still accepts new sessions.
  await using fresh = await connect(server.url);
  await stillWorks(fresh);
});

Deno.test("a malformed session.pong over a raw socket gets INVALID_REQUEST naming the field; a well-formed one gets no answer", async () => {
  await using server = await startServer();
  const raw = await RawWs.open(server.url);
  try {
    const sessionId = (await raw.hello(["heartbeat", "list_jobs"])).session_id;
    const cases: Array<[unknown, RegExp]> = [
      [{}, /payload\.ping_nonce/],
      [{ ping_nonce: 5, received_at: new Date().toISOString() }, /payload\.ping_nonce/],
      [{ ping_nonce: "n" }, /payload\.received_at/],
      ["pong", /payload/],
    ];
    for (const [payload, field] of cases) {
      await raw.send({ type: "session.pong", session_id: sessionId, payload });
      const [e] = await raw.readUntil(() => true);
      equal(e.type, "session.error", JSON.stringify(payload));
      equal(e.payload.code, "INVALID_REQUEST");
      equal(e.payload.retryable, false);
      match(e.payload.message, field);
    }
    // A well-formed pong is taken silently: the next frame answers the request queued behind it.
    const pong = { ping_nonce: "n-1", received_at: new Date().toISOString() };
    await raw.send({ type: "session.pong", session_id: sessionId, payload: pong });
    await raw.send({ type: "session.list_jobs", session_id: sessionId, payload: {} });
    const [next] = await raw.readUntil(() => true);
    equal(next.type, "session.jobs", JSON.stringify(next.payload));
  } finally {
    raw.close();
  }
});
