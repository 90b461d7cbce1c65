import { deepEqual, equal } from "assert";
import { GateWebSocket, WRITE_SETTLE_HOPS } from "./gate_socket.ts";

/** A connection that records each write and whose read ends when told. */
function recordingConn(): { conn: Deno.Conn; writes: Uint8Array[]; end: () => void } {
  const writes: Uint8Array[] = [];
  const ended = Promise.withResolvers<null>();
  const conn = {
    write: (bytes: Uint8Array) => {
      writes.push(bytes.slice());
      return Promise.resolve(bytes.length);
    },
    read: () => ended.promise,
    closeWrite: () => Promise.resolve(),
  } as unknown as Deno.Conn;
  return { conn, writes, end: () => ended.resolve(null) };
}

/** The text frames in what was written: unmasked, short, unfragmented, as the server sends these. */
function textsOf(writes: Uint8Array[]): string[] {
  const bytes = new Uint8Array(writes.reduce((n, w) => n + w.length, 0));
  let at = 0;
  for (const w of writes) {
    bytes.set(w, at);
    at += w.length;
  }
  const texts: string[] = [];
  for (let i = 0; i < bytes.length;) {
    equal(bytes[i], 0x81, "a final text frame");
    const length = bytes[i + 1];
    texts.push(new TextDecoder().decode(bytes.subarray(i + 2, i + 2 + length)));
    i += 2 + length;
  }
  return texts;
}

Deno.test("frames handed by a settle and by its waiters a few microtasks later go out in one write, in order", async () => {
  const { conn, writes, end } = recordingConn();
  const socket = new GateWebSocket({ conn, drop: end });
  socket.serve(
    { maxFrameBytes: 1024, remoteAddr: "test", secure: false, maxQueuedBytes: 1 << 20 },
    () => ({ onText() {}, onClose() {} }),
  );
  socket.open();
  // As a commit settles: its hook sends one frame, its waiters two more, hops later.
  const settled = Promise.withResolvers<void>();
  const delivered = settled.promise.then(async () => {
    await undefined;
    socket.send("second");
    socket.send("third");
  });
  socket.send("first");
  settled.resolve();
  await delivered;
  for (let hop = 0; hop <= WRITE_SETTLE_HOPS; hop++) await undefined;
  await new Promise((r) => setTimeout(r, 0));
  equal(writes.length, 1);
  deepEqual(textsOf(writes), ["first", "second", "third"]);
  // What is handed after that write went out goes in a write of its own.
  socket.send("fourth");
  await new Promise((r) => setTimeout(r, 0));
  equal(writes.length, 2);
  deepEqual(textsOf(writes), ["first", "second", "third", "fourth"]);
  end();
  await new Promise((r) => setTimeout(r, 0));
});
