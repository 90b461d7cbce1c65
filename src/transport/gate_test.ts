import { deepEqual } from "assert";
import { silentLogger } from "../logger.ts";
import { DEFAULT_GATE_LIMITS, serveGated } from "./gate.ts";

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
