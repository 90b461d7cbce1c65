/**
 * The far end of figure 12, run as a process of its own so that the client
 * measuring it does not share its event loop:
 *
 * - `runtime <worker|process>`: a bench runtime (`startBenchServer`) with
 *   that sandbox, counting its KV commits;
 * - `ws`: a bare `Deno.serve` WebSocket on loopback, the ceiling under any
 *   runtime: on `send <n> <bytes>` it sends `n` text frames of that size as
 *   fast as the socket takes them, then `done`; any other frame is echoed.
 *
 * It prints `URL <ws url>` once listening, answers `stats` on stdin with
 * `STATS {"commits": n}` (KV commits so far), and exits on SIGTERM.
 *
 * @module
 */
import { startBenchServer } from "./_util.ts";

/** Frames queued in the socket past which the sender waits (bytes). */
const SEND_HIGH_WATER = 1 << 20;

let commits = 0;
const proto = Deno.AtomicOperation.prototype;
const original = proto.commit;
proto.commit = function (this: Deno.AtomicOperation) {
  commits++;
  return original.call(this);
};

const [mode, sandbox] = Deno.args;
let close: () => Promise<void>;
if (mode === "runtime") {
  const server = await startBenchServer({ sandbox: sandbox === "worker" ? "worker" : "process" });
  console.log(`URL ${server.url}`);
  close = () => server.close(true);
} else if (mode === "ws") {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (m) => {
        const text = String(m.data);
        const send = /^send (\d+) (\d+)$/.exec(text);
        if (send) void sendMany(socket, Number(send[1]), Number(send[2]));
        else socket.send(text);
      };
      return response;
    },
  );
  console.log(`URL ws://127.0.0.1:${server.addr.port}/`);
  close = async () => {
    ac.abort();
    await server.finished;
  };
} else {
  throw new Error(`unknown mode ${mode}`);
}

/** Sends `n` frames of `bytes` characters, pausing while the socket's buffer is full. */
async function sendMany(socket: WebSocket, n: number, bytes: number): Promise<void> {
  const frame = "x".repeat(bytes);
  for (let i = 0; i < n; i++) {
    while (socket.bufferedAmount > SEND_HIGH_WATER) await new Promise((r) => setTimeout(r, 1));
    socket.send(frame);
  }
  socket.send("done");
}

Deno.addSignalListener("SIGTERM", async () => {
  await close();
  Deno.exit(0);
});

for await (const line of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  if (line.includes("stats")) console.log(`STATS ${JSON.stringify({ commits })}`);
}
