/**
 * The gate's own WebSocket: a strict upgrade of `/arcp` is answered on the
 * client's connection, with no relay behind it. Hostile frames close that
 * connection alone with the code RFC 6455 names; pings, the close
 * handshake, the keepalive and TLS work as they did through the relay; a
 * refusal reads the same on either path; relayed connections are capped by
 * the fds they hold.
 */
import { deepEqual, equal, ok } from "assert";
import { silentLogger } from "../../src/logger.ts";
import { DEFAULT_GATE_LIMITS, type GatedServer, serveGated } from "../../src/transport/gate.ts";
import type { Transport } from "../../src/transport/transport.ts";
import { RawWs } from "../../testing/raw_ws.ts";
import { startServer } from "../../testing/server.ts";
import { haveOpenssl, testCertificates } from "../../testing/tls.ts";
import { connect, type WsClient } from "../../testing/ws_client.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One masked client frame: first byte as given; `claim` writes a 64-bit length and no payload. */
function frame(b0: number, payload: Uint8Array | string = "", claim?: bigint): Uint8Array {
  const body = typeof payload === "string" ? enc.encode(payload) : payload;
  if (claim !== undefined) {
    const head = new Uint8Array(14);
    head[0] = b0;
    head[1] = 0x80 | 127;
    new DataView(head.buffer).setBigUint64(2, claim);
    return head;
  }
  const ext = body.length < 126 ? 0 : 2;
  const out = new Uint8Array(2 + ext + 4 + body.length);
  out[0] = b0;
  if (ext === 0) out[1] = 0x80 | body.length;
  else {
    out[1] = 0x80 | 126;
    new DataView(out.buffer).setUint16(2, body.length);
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, 2 + ext);
  for (let i = 0; i < body.length; i++) out[6 + ext + i] = body[i] ^ mask[i & 3];
  return out;
}

/** Reads up to the server's close frame and then the end of the connection; its code. */
async function closeCode(raw: RawWs): Promise<number | undefined> {
  let f = await raw.readFrame(10_000);
  while (f && f.opcode !== 8) f = await raw.readFrame(10_000);
  ok(f, "no close frame before the connection ended");
  // The server ends its side after its close frame: nothing else follows.
  equal(await raw.readFrame(10_000), undefined);
  ok(raw.ended, "the connection stayed open after the close frame");
  return f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : undefined;
}

/** Pings over a session and returns the answer's type. */
async function pingPong(c: WsClient): Promise<string> {
  c.send("session.ping", { nonce: "n", sent_at: new Date().toISOString() });
  return (await c.next((e) => e.type === "session.pong", 5_000, "pong")).type;
}

const CAP = 1024 * 1024;
const HOSTILE: Array<[string, Uint8Array, number]> = [
  ["an unmasked frame", new Uint8Array([0x81, 0x02, 0x68, 0x69]), 1002],
  ["a reserved bit", frame(0xc1, "hi"), 1002],
  ["an unknown opcode", frame(0x83, "hi"), 1002],
  ["a fragmented ping", frame(0x09, "hi"), 1002],
  ["a ping of 126 bytes", frame(0x89, new Uint8Array(126)), 1002],
  ["a continuation without a message", frame(0x80, "hi"), 1002],
  [
    "a new message inside a fragmented one",
    new Uint8Array([...frame(0x01, "a"), ...frame(0x81, "b")]),
    1002,
  ],
  ["text that is not UTF-8", frame(0x81, new Uint8Array([0x7b, 0xff, 0x7d])), 1007],
  [
    "UTF-8 cut between fragments",
    new Uint8Array([...frame(0x01, new Uint8Array([0xc3])), ...frame(0x80, "A")]),
    1007,
  ],
  ["a 64-bit length with its top bit set", frame(0x81, "", 1n << 63n), 1002],
  ["the head of a text message over the cap", frame(0x81, "", BigInt(CAP + 1)), 1009],
  ["the head of a binary message over the cap", frame(0x82, "", BigInt(CAP + 1)), 1009],
  ["a close frame of one byte", frame(0x88, new Uint8Array([3])), 1002],
  ["a close code not for the wire", frame(0x88, new Uint8Array([0x03, 0xed])), 1002],
];

Deno.test("hostile frames close that connection alone, with RFC 6455's code; another session goes on", async () => {
  await using server = await startServer();
  await using bob = await connect(server.url, "bob-token");
  // Bob's session is the gate's own WebSocket: nothing is relayed.
  equal(server.gate.relayed, 0);
  for (const [what, bytes, code] of HOSTILE) {
    const raw = await RawWs.open(server.url);
    try {
      await raw.hello([]);
      await raw.sendRaw(bytes);
      equal(await closeCode(raw), code, what);
    } finally {
      raw.close();
    }
    equal(await pingPong(bob), "session.pong", `after ${what}`);
  }
  equal(server.gate.relayed, 0);
});

Deno.test("a binary message within the cap is counted and dropped; the session goes on", async () => {
  await using server = await startServer();
  const raw = await RawWs.open(server.url);
  try {
    const welcome = await raw.hello([]);
    await raw.sendRaw(frame(0x82, new Uint8Array(60_000)));
    await raw.send({
      type: "session.ping",
      session_id: welcome.session_id,
      payload: { nonce: "after-binary", sent_at: new Date().toISOString() },
    });
    const pong = (await raw.readUntil((e) => e.type === "session.pong")).at(-1)!;
    equal(pong.payload.ping_nonce, "after-binary");
  } finally {
    raw.close();
  }
});

Deno.test("a strict upgrade is served by the gate itself; any other upgrade of /arcp is relayed and works", async () => {
  await using server = await startServer();
  await using direct = await connect(server.url);
  equal(server.gate.relayed, 0);
  await using relayed = await connect(`${server.url}?via=relay`);
  equal(server.gate.relayed, 1);
  equal(await pingPong(direct), "session.pong");
  equal(await pingPong(relayed), "session.pong");
});

/** Writes `head` on a new connection and reads one response: status line, headers, body. */
async function exchange(
  port: number,
  head: string,
): Promise<{ status: string; type: string | null; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(enc.encode(head));
    let got = new Uint8Array(0);
    const buf = new Uint8Array(4096);
    const more = async () => {
      const n = await conn.read(buf);
      if (n === null) throw new Error(`connection ended after ${dec.decode(got)}`);
      got = new Uint8Array([...got, ...buf.subarray(0, n)]);
    };
    while (!dec.decode(got).includes("\r\n\r\n")) await more();
    const text = dec.decode(got);
    const end = text.indexOf("\r\n\r\n") + 4;
    const lines = text.slice(0, end - 4).split("\r\n");
    const header = (name: string) =>
      lines.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim() ??
        null;
    const length = Number(header("content-length"));
    while (got.length < end + length) await more();
    return {
      status: lines[0],
      type: header("content-type"),
      body: dec.decode(got.subarray(end, end + length)),
    };
  } finally {
    conn.close();
  }
}

Deno.test("an upgrade the route refuses gets the same status line and body as through the relay", async () => {
  await using server = await startServer();
  const port = Number(new URL(server.url).port);
  // `Upgrade: WebSocket` is a strict upgrade head; the route asks for the lower-case token.
  const head = (target: string) =>
    `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n` +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  const direct = await exchange(port, head("/arcp"));
  const relayed = await exchange(port, head("/arcp?via=relay"));
  deepEqual(direct, relayed);
  equal(direct.status, "HTTP/1.1 426 Upgrade Required");
  equal(direct.body, "expected a WebSocket upgrade");
  // A runtime shutting down refuses every upgrade, the same way on both paths.
  await server.runtime.close();
  const strict = head("/arcp").replace("WebSocket", "websocket");
  const closing = await exchange(port, strict);
  deepEqual(closing, await exchange(port, strict.replace("/arcp", "/arcp?via=relay")));
  deepEqual([closing.status, closing.body], ["HTTP/1.1 503 Service Unavailable", "shutting down"]);
});

Deno.test("relayed connections are capped by the fds they hold; the gate's own WebSockets are not counted", async () => {
  await using server = await startServer({}, { maxRelayed: 1, headerTimeoutMs: 30_000 });
  const port = Number(new URL(server.url).port);
  // Not a health check (the gate answers those itself): a small 404, relayed.
  const relayedGet = "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n";
  const first = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await first.write(enc.encode(relayedGet));
    // Kept alive after its answer: one relayed connection.
    ok((await first.read(new Uint8Array(4096)))! > 0);
    equal(server.gate.relayed, 1);
    await using c = await connect(server.url);
    equal(server.gate.relayed, 1);
    // A second relayed request pushes out the first, which waits between requests.
    const second = await exchange(port, relayedGet);
    equal(second.status, "HTTP/1.1 404 Not Found");
    equal(await first.read(new Uint8Array(4096)).catch(() => null), null);
    equal(await pingPong(c), "session.pong");
  } finally {
    first.close();
  }
});

/** A gate serving an echo WebSocket on `/ws` itself, with short timings; what its sockets saw. */
function echoGate(tls?: { cert: string; key: string }) {
  const ended: Array<() => void> = [];
  let secure: boolean | undefined;
  const server: GatedServer = serveGated({
    hostname: "127.0.0.1",
    port: 0,
    tls,
    limits: DEFAULT_GATE_LIMITS,
    log: silentLogger(),
    webSocketPaths: ["/ws"],
    webSocketTimings: { keepaliveMs: 300, closeWaitMs: 300 },
  }, (req, info) => {
    const { socket, response } = info.upgrade!(req);
    secure = info.secure;
    socket.serve(
      { maxFrameBytes: 1024, remoteAddr: "test", secure: info.secure, maxQueuedBytes: 1 << 20 },
      (t: Transport) => ({
        onText: (text) => text === "close please" ? t.close(1000, "as asked") : t.send(text),
        onClose: () => ended.shift()?.(),
      }),
    );
    return response;
  });
  return {
    server,
    url: `${tls ? "wss" : "ws"}://127.0.0.1:${server.addr.port}/ws`,
    secure: () => secure,
    nextEnd: () => new Promise<void>((r) => ended.push(r)),
  };
}

Deno.test("pongs answer the latest ping ahead of data; the client's close is answered and the connection ends", async () => {
  const gate = echoGate();
  const raw = await RawWs.open(gate.url);
  try {
    equal(gate.server.relayed, 0);
    const end = gate.nextEnd();
    for (const nonce of ["a", "b", "c"]) await raw.sendFrame(9, enc.encode(nonce));
    await raw.sendFrame(1, enc.encode("end"));
    const pongs: string[] = [];
    let f = await raw.readFrame();
    while (f && f.opcode !== 1) {
      equal(f.opcode, 10);
      pongs.push(dec.decode(f.payload));
      f = await raw.readFrame();
    }
    equal(dec.decode(f!.payload), "end");
    equal(pongs.at(-1), "c", `pongs ${pongs}`);
    ok(pongs.every((p) => ["a", "b", "c"].includes(p)));
    await raw.sendFrame(8, new Uint8Array([0x03, 0xe8, ...enc.encode("bye")]));
    equal(await closeCode(raw), 1000);
    raw.close();
    await end;
  } finally {
    raw.close();
    await gate.server.shutdown();
  }
});

Deno.test("the server's close waits for the client's answer only so long, then drops the connection", async () => {
  const gate = echoGate();
  const raw = await RawWs.open(gate.url);
  try {
    const end = gate.nextEnd();
    await raw.sendFrame(1, enc.encode("close please"));
    equal(await closeCode(raw), 1000);
    // The client neither answers nor closes: the close wait ends the socket.
    await end;
    equal(gate.server.connections, 0);
  } finally {
    raw.close();
    await gate.server.shutdown();
  }
});

Deno.test("an idle socket is pinged; answered it stays, silent it is closed with 1001", async () => {
  const gate = echoGate();
  const raw = await RawWs.open(gate.url);
  try {
    const end = gate.nextEnd();
    const ping = await raw.readFrame();
    equal(ping?.opcode, 9);
    await raw.sendFrame(10, ping!.payload);
    equal((await raw.readFrame())?.opcode, 9, "no second ping after the pong");
    // This one is left unanswered.
    equal(await closeCode(raw), 1001);
    await end;
  } finally {
    raw.close();
    await gate.server.shutdown();
  }
});

Deno.test({
  name:
    "over TLS the gate speaks the WebSocket itself too: messages, pings and the close handshake",
  ignore: !haveOpenssl,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "arcp_gate_tls_" });
    const { ca, cert, key } = await testCertificates(dir);
    const gate = echoGate({ cert, key });
    const conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: gate.server.addr.port,
      caCerts: [ca],
    });
    const raw = await RawWs.open(gate.url, conn);
    try {
      equal(gate.secure(), true);
      equal(gate.server.relayed, 0);
      const end = gate.nextEnd();
      const text = "é".repeat(300);
      await raw.sendFrame(1, enc.encode(text));
      const echo = await raw.readFrame();
      deepEqual([echo?.opcode, dec.decode(echo!.payload)], [1, text]);
      await raw.sendFrame(9, enc.encode("tls"));
      const pong = await raw.readFrame();
      deepEqual([pong?.opcode, dec.decode(pong!.payload)], [10, "tls"]);
      await raw.sendFrame(8, new Uint8Array([0x03, 0xe8]));
      equal(await closeCode(raw), 1000);
      raw.close();
      await end;
    } finally {
      raw.close();
      await gate.server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a burst of envelopes, written many frames to a write, reaches a client reading a few bytes at a time whole and in order", async () => {
  await using server = await startServer();
  const u = new URL(server.url);
  const tcp = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  // Every read takes 1 to 7 bytes, so frame boundaries fall everywhere in the server's writes.
  let n = 0;
  const trickle = {
    read: (p: Uint8Array) => tcp.read(p.subarray(0, 1 + (n++ % 7))),
    write: (p: Uint8Array) => tcp.write(p),
    close: () => tcp.close(),
  } as unknown as Deno.Conn;
  const raw = await RawWs.open(server.url, trickle);
  try {
    const welcome = await raw.hello(["progress"]);
    const count = 300;
    await raw.send({
      type: "job.submit",
      session_id: welcome.session_id,
      payload: { agent: "ticker", input: { count, interval_ms: 0 } },
    });
    const envs = await raw.readUntil((e) => e.type === "job.result" || e.type === "job.error");
    const seqd = envs.filter((e) => e.event_seq !== undefined);
    deepEqual(seqd.map((e) => e.event_seq), seqd.map((_, i) => i + 1), "seqs gap-free, in order");
    const ticks = seqd.filter((e) => e.type === "job.event" && e.payload.kind === "progress");
    deepEqual(ticks.map((e) => e.payload.body.current), ticks.map((_, i) => i + 1));
    equal(ticks.length, count);
    equal(envs.at(-1)!.type, "job.result");
  } finally {
    raw.close();
  }
});
