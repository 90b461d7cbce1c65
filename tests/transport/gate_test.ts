/**
 * Hostile connections: idle TCP connections, partial requests and
 * WebSockets that never say hello must neither end the process nor lock a
 * real client out. The fd-limit case runs the real CLI with a low
 * `ulimit -n`, where `Deno.serve` alone exits with EMFILE.
 */
import { equal, ok } from "assert";
import { startChildServer, startServer } from "../../testing/server.ts";
import { connect, WsClient } from "../../testing/ws_client.ts";

/** Opens `n` plain TCP connections that send nothing; those refused or reset are not counted. */
async function holdIdle(port: number, n: number): Promise<Deno.Conn[]> {
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < n; i++) {
    try {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    } catch {
      // refused: the listener is gone or the backlog is full
    }
  }
  return conns;
}

function closeAll(conns: Deno.Conn[]): void {
  for (const c of conns) {
    try {
      c.close();
    } catch {
      // closed by the server
    }
  }
}

/** Pings over a session and returns the answer's type. */
async function pingPong(c: WsClient): Promise<string> {
  c.send("session.ping", { nonce: "n", sent_at: new Date().toISOString() });
  return (await c.next((e) => e.type === "session.pong", 5_000, "pong")).type;
}

/** Waits until `conn` is closed by the peer, or `ms` passes; true when closed. */
async function closedByPeer(conn: Deno.Conn, ms: number): Promise<boolean> {
  const buf = new Uint8Array(1024);
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = conn.read(buf).catch(() => null);
    const got = await Promise.race([
      read,
      new Promise<"open">((r) => (timer = setTimeout(() => r("open"), deadline - Date.now()))),
    ]);
    clearTimeout(timer);
    if (got === null) return true;
    if (got === "open") return false;
  }
  return false;
}

Deno.test("more idle connections than the fd limit allows neither end the server nor lock a real client out", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_gate_" });
  // 512 fds: the runtime's own use plus the gate's caps stay below it; Deno.serve alone died here.
  const child = await startChildServer(`${dir}/arcp.kv`, ["--header-timeout-sec", "60"], {}, 512);
  const port = Number(new URL(child.url).port);
  const idle = await holdIdle(port, 700);
  try {
    ok(idle.length > 0, "no idle connection was accepted at all");
    const started = performance.now();
    const real = await connect(child.url);
    const ms = performance.now() - started;
    ok(ms < 5_000, `a real client took ${ms.toFixed(0)} ms to be welcomed`);
    const done = await real.submit({ agent: "echo", input: "still here" });
    equal(done.type, "job.accepted");
    await real.untilTerminal(done.job_id!);
    await real.close();
    const health = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.json());
    equal(health.ok, true);
  } finally {
    closeAll(idle);
    const status = await child.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    ok(!child.output().includes("Too many open files\n    at"), child.output());
    equal(status.code, 0, `the server did not shut down cleanly:\n${child.output()}`);
  }
});

Deno.test("a connection whose request never completes is closed after the header timeout", async () => {
  await using server = await startServer({}, { headerTimeoutMs: 500 });
  const port = Number(new URL(server.url).port);
  const silent = await Deno.connect({ hostname: "127.0.0.1", port });
  const partial = await Deno.connect({ hostname: "127.0.0.1", port });
  await partial.write(new TextEncoder().encode("GET /arcp HTTP/1.1\r\nHost: x\r\nUpgrade: web"));
  try {
    ok(await closedByPeer(silent, 5_000), "a silent connection was kept open");
    ok(await closedByPeer(partial, 5_000), "a partial request was kept open");
    // Upgraded sockets are the session layer's business, not the header timeout's.
    await using c = await connect(server.url);
    await new Promise((r) => setTimeout(r, 1_000));
    equal(await pingPong(c), "session.pong");
  } finally {
    closeAll([silent, partial]);
  }
});

Deno.test("past the per-address cap the oldest connection not yet upgraded makes room", async () => {
  await using server = await startServer({}, {
    maxConnectionsPerAddress: 4,
    headerTimeoutMs: 30_000,
  });
  const port = Number(new URL(server.url).port);
  await using a = await connect(server.url);
  await using _b = await connect(server.url);
  const idle = await holdIdle(port, 3);
  try {
    // Two sessions and three idle: the fifth pushed out the oldest idle one.
    ok(await closedByPeer(idle[0], 5_000), "the oldest idle connection was kept past the cap");
    // Upgraded sockets are never pushed out; with only they left, a newcomer is refused.
    await using _c = await connect(server.url);
    await using d = await connect(server.url);
    const e = new WsClient(server.url);
    await e.opened().then(() => ok(false, "a fifth WebSocket was let in"), () => {});
    equal(await pingPong(a), "session.pong");
    equal(await pingPong(d), "session.pong");
  } finally {
    closeAll(idle);
  }
});

Deno.test("a WebSocket that never says hello is closed with INVALID_REQUEST after the hello timeout", async () => {
  await using server = await startServer({ sessions: { helloTimeoutSec: 1 } });
  const c = new WsClient(server.url);
  await c.opened();
  const err = await c.next((e) => e.type === "session.error", 5_000, "hello timeout");
  equal(err.payload.code, "INVALID_REQUEST");
  equal(err.payload.details.cap, "hello_timeout");
  await c.closed();
  equal(c.closeCode, 1008);
});

Deno.test("the private port behind the gate answers only the gate's own connections", async () => {
  await using server = await startServer();
  const res = await fetch(`${server.http}/healthz`);
  equal(res.status, 200);
  await res.body?.cancel();
  const direct = await fetch(`http://127.0.0.1:${server.gate.inner.port}/healthz`);
  equal(direct.status, 403);
  await direct.body?.cancel();
});
