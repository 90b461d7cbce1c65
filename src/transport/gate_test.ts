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
