import { deepEqual, equal, match, ok } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect, WsClient } from "../../testing/ws_client.ts";

Deno.test("hello with a good token is welcomed with the negotiated features and the agent inventory", async () => {
  await using server = await startServer();
  await using c = new WsClient(server.url);
  const w = await c.hello("alice-token", ["agent_versions", "list_jobs", "no-such-feature"]);
  equal(w.type, "session.welcome");
  equal(w.arcp, "1.1");
  match(w.session_id!, /^sess_/);
  deepEqual([...w.payload.capabilities.features].sort(), ["agent_versions", "list_jobs"]);
  equal(w.payload.heartbeat_interval_sec, undefined);
  ok(w.payload.resume_token.length >= 22);
  ok(Number.isInteger(w.payload.resume_window_sec) && w.payload.resume_window_sec > 0);
  const echo = w.payload.capabilities.agents.find((a: { name: string }) => a.name === "echo");
  deepEqual(echo, { name: "echo", versions: ["1.0.0", "2.0.0"], default: "2.0.0" });
});

Deno.test("a hello with no features negotiates none", async () => {
  await using server = await startServer();
  await using c = new WsClient(server.url);
  const w = await c.hello("alice-token", []);
  deepEqual(w.payload.capabilities.features, []);
});

Deno.test("a bad token gets session.error UNAUTHENTICATED with a fresh session id, then the socket closes", async () => {
  await using server = await startServer();
  const c = new WsClient(server.url);
  const e = await c.hello("wrong");
  equal(e.type, "session.error");
  equal(e.payload.code, "UNAUTHENTICATED");
  equal(e.payload.retryable, false);
  match(e.session_id!, /^sess_/);
  ok((await c.closed()) !== undefined);
});

Deno.test("repeated failed hellos from one address never lock a valid token out", async () => {
  await using server = await startServer();
  for (let i = 0; i < 10; i++) {
    const c = new WsClient(server.url);
    equal((await c.hello("wrong")).payload.code, "UNAUTHENTICATED");
    await c.closed();
  }
  // Every local client shares this address: failures are slowed (see
  // tests/sandbox/protected_test.ts), a valid token is still welcomed.
  await using c = new WsClient(server.url);
  equal((await c.hello("alice-token")).type, "session.welcome");
});

Deno.test("on a throttled address the failing hellos are held and a valid token is welcomed ahead of them", async () => {
  await using server = await startServer();
  for (let i = 0; i < 10; i++) {
    const c = new WsClient(server.url);
    equal((await c.hello(`wrong-${i}`)).payload.code, "UNAUTHENTICATED");
    await c.closed();
  }
  // Three more failures at once: the tarpit holds their answers 1, 2 and 4 s.
  const order: string[] = [];
  const held = Array.from({ length: 3 }, async (_, i) => {
    const c = new WsClient(server.url);
    const e = await c.hello(`wrong-held-${i}`);
    order.push(e.payload.code);
    return e;
  });
  await Promise.race(held);
  // The address is throttled now; its next valid hello is not.
  await using good = new WsClient(server.url);
  const w = await good.hello("alice-token");
  order.push(w.type);
  equal(w.type, "session.welcome");
  for (const e of await Promise.all(held)) equal(e.payload.code, "UNAUTHENTICATED");
  // Welcomed while refusals of the same address were still held (the last one for 4 s).
  equal(order.length, 4);
  equal(order.at(-1), "UNAUTHENTICATED", `order of answers: ${order}`);
});

Deno.test("a first message that is not a hello is refused and the socket closes", async () => {
  await using server = await startServer();
  const c = new WsClient(server.url);
  await c.opened();
  c.send("job.submit", { agent: "echo", input: 1 });
  const e = await c.next((x) => x.type === "session.error");
  equal(e.payload.code, "INVALID_REQUEST");
  match(e.payload.message, /session\.hello/);
  ok((await c.closed()) !== undefined);
});

Deno.test("ping is answered with pong echoing the nonce, even without the heartbeat feature", async () => {
  await using server = await startServer();
  await using c = await connect(server.url, "alice-token", []);
  c.send("session.ping", { nonce: "n-1", sent_at: new Date().toISOString() });
  const pong = await c.next((e) => e.type === "session.pong");
  equal(pong.payload.ping_nonce, "n-1");
  equal(pong.session_id, c.sessionId);
});

Deno.test("session.close is answered with session.closed and the socket closes", async () => {
  await using server = await startServer();
  const c = await connect(server.url);
  c.send("session.close", {});
  await c.next((e) => e.type === "session.closed");
  ok((await c.closed()) !== undefined);
});

Deno.test("GET /healthz answers ok", async () => {
  await using server = await startServer();
  const res = await fetch(`${server.http}/healthz`);
  equal(res.status, 200);
  equal((await res.json()).ok, true);
});
