/**
 * A WebSocket that ends without the closing handshake (here Deno's own ping
 * timeout, on a client that never reads) keeps its TCP connection open
 * behind the frames it could not send, so the transport drops the
 * connection; a clean close is left to end by itself.
 */
import { equal } from "assert";
import { acceptWebSocket } from "../../src/transport/websocket.ts";
import { serveLoopback } from "../../testing/loopback.ts";
import { RawWs } from "../../testing/raw_ws.ts";

/** A server whose sockets ping after 1 s of silence; counts drops and closes. */
function pingingServer() {
  let aborts = 0;
  const closed: Array<() => void> = [];
  const handler = (req: Request) => {
    const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: 1 });
    acceptWebSocket(socket, {
      maxFrameBytes: 1024,
      remoteAddr: "test",
      secure: false,
      maxQueuedBytes: 1024 * 1024,
      abort: () => aborts++,
    }, () => ({ onText() {}, onClose: () => closed.shift()?.() }));
    return response;
  };
  const server = serveLoopback(handler);
  return {
    url: `ws://127.0.0.1:${server.port}/`,
    aborts: () => aborts,
    nextClose: () => new Promise<void>((r) => closed.push(r)),
    close: server.close,
  };
}

Deno.test("a socket closed by Deno's ping timeout is dropped at once", async () => {
  const server = pingingServer();
  const raw = await RawWs.open(server.url);
  try {
    // The client never reads, so it never answers the ping.
    await server.nextClose();
    equal(server.aborts(), 1);
  } finally {
    raw.close();
    await server.close();
  }
});

Deno.test("a socket closed with the handshake is not dropped", async () => {
  const server = pingingServer();
  const raw = await RawWs.open(server.url);
  try {
    const closing = server.nextClose();
    await raw.sendFrame(8, new Uint8Array([0x03, 0xe8]));
    // Read up to the server's close frame, as a client that completes the handshake does.
    let frame = await raw.readFrame(5_000);
    while (frame && frame.opcode !== 8) frame = await raw.readFrame(5_000);
    equal(frame?.opcode, 8);
    await closing;
    equal(server.aborts(), 0);
  } finally {
    raw.close();
    await server.close();
  }
});
