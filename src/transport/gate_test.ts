import { deepEqual, equal, ok } from "assert";
import { silentLogger } from "../logger.ts";
import { DEFAULT_GATE_LIMITS, gateLimitsFor, serveGated } from "./gate.ts";

/** Sizes around the relay's small and large read buffers (1 KiB, 16 KiB), mixed. */
const SIZES = [1, 1023, 1024, 1025, 3, 16_384, 16_385, 5, 200_000, 2, 2048, 1];

function pattern(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

Deno.test("the gate relays WebSocket messages whole and in order both ways, small and large mixed", async () => {
  const server = serveGated(
    { hostname: "127.0.0.1", port: 0, limits: DEFAULT_GATE_LIMITS, log: silentLogger() },
    (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.binaryType = "arraybuffer";
      socket.onmessage = (e) => socket.send(e.data);
      return response;
    },
  );
  const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  ws.binaryType = "arraybuffer";
  const echoes: Uint8Array[] = [];
  let wake = () => {};
  ws.onmessage = (e) => {
    echoes.push(new Uint8Array(e.data));
    wake();
  };
  // A mangled stream makes either end close the socket: the comparison below then fails.
  const closed = new Promise((r) =>
    ws.onclose = () => {
      r(undefined);
      wake();
    }
  );
  try {
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    // All sent at once, so reads on both hops fill buffers and come up short in turn.
    const sent = SIZES.map((size, i) => pattern(size, i));
    for (const bytes of sent) ws.send(bytes);
    while (echoes.length < sent.length && ws.readyState === WebSocket.OPEN) {
      await new Promise<void>((r) => wake = r);
    }
    deepEqual(echoes, sent);
  } finally {
    ws.close();
    await closed;
    await server.shutdown();
  }
});

Deno.test("the gate relays request and response bodies of every size intact", async () => {
  const server = serveGated(
    { hostname: "127.0.0.1", port: 0, limits: DEFAULT_GATE_LIMITS, log: silentLogger() },
    async (req) => new Response(await req.arrayBuffer()),
  );
  try {
    for (const [i, size] of SIZES.entries()) {
      const body = pattern(size, i);
      const res = await fetch(`http://127.0.0.1:${server.addr.port}/`, { method: "POST", body });
      deepEqual(new Uint8Array(await res.arrayBuffer()), body, `${size} bytes`);
    }
  } finally {
    await server.shutdown();
  }
});

/** Reads `conn` to its end; what it read. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
}

// With an hour's header timeout, only the end of one direction can close these links.
const PATIENT = { ...DEFAULT_GATE_LIMITS, headerTimeoutMs: 3_600_000 };

Deno.test("a relayed connection is released as soon as the client ends its side", async () => {
  const server = serveGated(
    { hostname: "127.0.0.1", port: 0, limits: PATIENT, log: silentLogger() },
    () => new Response("never complete"),
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n"));
    await conn.closeWrite();
    await readToEnd(conn);
    equal(server.connections, 0);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("a relayed connection is released as soon as the server ends its side", async () => {
  const server = serveGated(
    { hostname: "127.0.0.1", port: 0, limits: PATIENT, log: silentLogger() },
    () => new Response("bye"),
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  try {
    await conn.write(
      new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    const reply = await readToEnd(conn);
    ok(reply.startsWith("HTTP/1.1 200") && reply.endsWith("bye"), reply);
    equal(server.connections, 0);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("under any fd limit, the caps keep connections within the fds past the reserve, relayed ones at three each", () => {
  for (const fdLimit of [512, 1024, 1280, 4096, 20_000, 65_536, 1_048_576]) {
    const limits = gateLimitsFor(fdLimit);
    // The worst case: every relayed slot taken (3 fds), every other connection the gate's own (1).
    const worst = limits.maxRelayed * 3 + (limits.maxConnections - limits.maxRelayed);
    ok(worst <= fdLimit - 256, `${fdLimit}: ${JSON.stringify(limits)}`);
    ok(limits.maxRelayed < limits.maxConnections);
    equal(limits.maxConnectionsPerAddress, Math.ceil(limits.maxConnections / 2));
  }
  equal(gateLimitsFor(1280).maxConnections, 512);
  equal(gateLimitsFor(1280).maxRelayed, 128);
  deepEqual(gateLimitsFor(undefined), DEFAULT_GATE_LIMITS);
});

/** Reads one response of `conn` whose body is `content-length` long; its text, head and body. */
async function readResponse(conn: Deno.Conn): Promise<string> {
  let text = "";
  const buf = new Uint8Array(4096);
  while (true) {
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
      if (text.length >= end + 4 + length) return text;
    }
    const n = await conn.read(buf);
    if (n === null) return text;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

/** A patient gate that answers `GET /healthz` itself. */
const DIRECT = {
  hostname: "127.0.0.1",
  port: 0,
  limits: PATIENT,
  log: silentLogger(),
  directPaths: ["/healthz"],
};

Deno.test("the gate answers GETs of its direct paths on the client's connection, which stays open for the next request", async () => {
  const seen: string[] = [];
  const server = serveGated(
    DIRECT,
    (req) => {
      seen.push(`${req.method} ${new URL(req.url).pathname}`);
      return Response.json({ ok: true, n: seen.length });
    },
  );
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  const send = (text: string) => conn.write(new TextEncoder().encode(text));
  try {
    for (const n of [1, 2]) {
      await send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      const reply = await readResponse(conn);
      ok(reply.startsWith("HTTP/1.1 200 "), reply);
      ok(/\r\nconnection: keep-alive\r\n/.test(reply), reply);
      ok(/\r\ncontent-type: application\/json/.test(reply), reply);
      ok(reply.endsWith(`{"ok":true,"n":${n}}`), reply);
      // Answered by the gate itself: nothing was relayed to the server behind.
      equal(server.relayed, 0);
      equal(server.connections, 1);
    }
    // Another path on the same connection is relayed from then on, and answered as before.
    await send("GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    const relayed = await readResponse(conn);
    ok(relayed.endsWith(`{"ok":true,"n":3}`), relayed);
    equal(server.relayed, 1);
    deepEqual(seen, ["GET /healthz", "GET /healthz", "GET /other"]);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("a direct GET that asks to close is answered and its connection closed; one with a body is relayed", async () => {
  const server = serveGated(
    DIRECT,
    async (req) => new Response(`${req.method} ${await req.text()}`),
  );
  try {
    const closing = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await closing.write(
      new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    const reply = await readToEnd(closing);
    closing.close();
    ok(reply.startsWith("HTTP/1.1 200 ") && reply.endsWith("GET "), reply);
    ok(/\r\nconnection: close\r\n/.test(reply), reply);
    equal(server.relayed, 0);
    equal(server.connections, 0);
    // A body is not the gate's to read: the server behind gets it whole.
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/healthz`, {
      method: "POST",
      body: "hello",
    });
    equal(await res.text(), "POST hello");
  } finally {
    await server.shutdown();
  }
});
