/**
 * A client that stops reading. The WebSocket class reads its socket all the
 * time, so a real non-reading client is played with a raw TCP connection
 * that does the WebSocket handshake and framing by hand and then simply
 * stops calling read(): the kernel buffers fill and the runtime's socket
 * buffer grows, exactly as with a stuck peer.
 *
 * @module
 */
import { deepEqual, equal, ok } from "assert";
import { startServer } from "../../testing/server.ts";
import { ALL_FEATURES, type Env, traceId, WsClient } from "../../testing/ws_client.ts";

/** One WebSocket frame as read. */
interface Frame {
  opcode: number;
  payload: Uint8Array;
}

/** A minimal client-side WebSocket over a raw TCP connection (RFC 6455, no extensions). */
class RawWs {
  readonly conn: Deno.TcpConn;
  #buf = new Uint8Array(0);
  #reading: Promise<Uint8Array | null> | undefined;
  #eof = false;
  #n = 0;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  /**
   * Connects and performs the opening handshake.
   *
   * @param url `ws://host:port/path`
   * @returns the open connection
   */
  static async open(url: string): Promise<RawWs> {
    const u = new URL(url);
    const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
    const ws = new RawWs(conn);
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    await ws.#writeAll(
      new TextEncoder().encode(
        `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    while (true) {
      const text = new TextDecoder().decode(ws.#buf);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        if (!text.startsWith("HTTP/1.1 101")) throw new Error(`handshake refused: ${text}`);
        ws.#buf = ws.#buf.slice(new TextEncoder().encode(text.slice(0, end + 4)).length);
        return ws;
      }
      if (!(await ws.#fill(5_000))) throw new Error("connection closed during handshake");
    }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  /** Reads more bytes into the buffer; false on EOF or timeout. */
  async #fill(ms: number): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(256 * 1024);
    this.#reading ??= this.conn.read(chunk).then((n) => (n === null ? null : chunk.subarray(0, n)))
      .catch(() => null);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)));
    const got = await Promise.race([this.#reading, timeout]);
    clearTimeout(timer);
    if (got === "timeout") return false;
    this.#reading = undefined;
    if (got === null) {
      this.#eof = true;
      return false;
    }
    const next = new Uint8Array(this.#buf.length + got.length);
    next.set(this.#buf);
    next.set(got, this.#buf.length);
    this.#buf = next;
    return true;
  }

  /**
   * Sends one masked frame.
   *
   * @param opcode 1 text, 8 close
   * @param payload the payload
   */
  async sendFrame(opcode: number, payload: Uint8Array): Promise<void> {
    const len = payload.length;
    const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const frame = new Uint8Array(head + 4 + len);
    frame[0] = 0x80 | opcode;
    if (len < 126) frame[1] = 0x80 | len;
    else if (len < 65536) {
      frame[1] = 0x80 | 126;
      new DataView(frame.buffer).setUint16(2, len);
    } else {
      frame[1] = 0x80 | 127;
      new DataView(frame.buffer).setBigUint64(2, BigInt(len));
    }
    const mask = crypto.getRandomValues(new Uint8Array(4));
    frame.set(mask, head);
    for (let i = 0; i < len; i++) frame[head + 4 + i] = payload[i] ^ mask[i & 3];
    await this.#writeAll(frame);
  }

  /**
   * Sends one envelope as a text frame.
   *
   * @param env the envelope, sent as given plus `arcp` and `id`
   */
  async send(env: Record<string, unknown>): Promise<void> {
    const full = { arcp: "1.1", id: `raw${this.#n++}`, ...env };
    await this.sendFrame(1, new TextEncoder().encode(JSON.stringify(full)));
  }

  /**
   * Reads the next frame.
   *
   * @param ms how long to wait for more bytes
   * @returns the frame, or undefined on EOF or timeout
   */
  async readFrame(ms = 10_000): Promise<Frame | undefined> {
    while (true) {
      const b = this.#buf;
      if (b.length >= 2) {
        const opcode = b[0] & 0x0f;
        let len = b[1] & 0x7f;
        let off = 2;
        if (len === 126 && b.length >= 4) {
          len = new DataView(b.buffer, b.byteOffset).getUint16(2);
          off = 4;
        } else if (len === 127 && b.length >= 10) {
          len = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(2));
          off = 10;
        } else if (len >= 126) {
          len = Infinity;
        }
        if (b.length >= off + len) {
          this.#buf = b.slice(off + len);
          return { opcode, payload: b.slice(off, off + len) };
        }
      }
      if (!(await this.#fill(ms))) return undefined;
    }
  }

  /**
   * Reads envelopes until `pred` matches; text frames only.
   *
   * @param pred what to wait for
   * @returns the envelopes read, the match last
   */
  async readUntil(pred: (e: Env) => boolean): Promise<Env[]> {
    const out: Env[] = [];
    while (true) {
      const f = await this.readFrame();
      if (!f) throw new Error("connection ended");
      if (f.opcode !== 1) continue;
      const env = JSON.parse(new TextDecoder().decode(f.payload)) as Env;
      out.push(env);
      if (pred(env)) return out;
    }
  }

  /** Closes the TCP connection. */
  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

/** The seq-bearing envelopes of a list must be `from`, `from + 1`, ... without gaps or repeats. */
function assertGapFree(envs: Env[], from: number): void {
  const seqs = envs.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq!);
  deepEqual(seqs, seqs.map((_, i) => from + i), `seqs not gap-free from ${from}: ${seqs}`);
}

const FEATURES = ALL_FEATURES.filter((f) => f !== "heartbeat");
const BIG = 180_000;
// More than the kernel buffers of both hops (client↔gate, gate↔server) hold, so the client stalls.
const JOBS = 150;

/** Says hello on a raw connection and returns the welcome. */
async function rawHello(raw: RawWs): Promise<Env> {
  await raw.send({
    type: "session.hello",
    payload: {
      client: { name: "raw", version: "0" },
      auth: { scheme: "bearer", token: "alice-token" },
      capabilities: { encodings: ["json"], features: FEATURES },
    },
  });
  const [w] = await raw.readUntil(() => true);
  equal(w.type, "session.welcome", JSON.stringify(w.payload));
  return w;
}

/** Submits JOBS echo jobs whose results are BIG characters each, without reading. */
async function flood(raw: RawWs, sessionId: string): Promise<string[]> {
  const traces: string[] = [];
  for (let i = 0; i < JOBS; i++) {
    const t = traceId();
    traces.push(t);
    await raw.send({
      type: "job.submit",
      session_id: sessionId,
      trace_id: t,
      payload: { agent: "echo", input: String(i % 10).repeat(BIG) },
    });
  }
  return traces;
}

/** Waits until the runtime has no live jobs. */
async function untilIdle(http: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const health = await fetch(`${http}/healthz`).then((r) => r.json());
    if (health.live_jobs === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("jobs did not finish");
}

Deno.test("a client that stops reading is disconnected after the stall timeout, and a resume loses nothing", async () => {
  await using server = await startServer({ maxBufferedBytes: 64 * 1024, stallTimeoutMs: 1500 });
  const raw = await RawWs.open(server.url);
  try {
    const w = await rawHello(raw);
    const sessionId = w.session_id!;
    const traces = await flood(raw, sessionId);
    await untilIdle(server.http);
    // Every job is done; the stall began while they ran. Give the watchdog its timeout.
    await new Promise((r) => setTimeout(r, 1500 + 1000));

    // Now read what the runtime managed to send before it gave up.
    const got: Env[] = [];
    let closeCode: number | undefined;
    while (true) {
      const f = await raw.readFrame(5_000);
      if (!f) break;
      if (f.opcode === 1) got.push(JSON.parse(new TextDecoder().decode(f.payload)));
      if (f.opcode === 8) {
        closeCode = f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;
        break;
      }
    }
    equal(closeCode, 1008, "the stalled socket should be closed with 1008");
    const seqd = got.filter((e) => e.event_seq !== undefined);
    assertGapFree(seqd, 1);
    const terminalsBefore = seqd.filter((e) => e.type === "job.result").length;
    ok(terminalsBefore < JOBS, "the client was never stalled: everything arrived");
    const last = seqd.at(-1)?.event_seq ?? 0;

    await using c = new WsClient(server.url);
    const w2 = await c.hello("alice-token", FEATURES, {
      session_id: sessionId,
      resume_token: w.payload.resume_token,
      last_event_seq: last,
    });
    equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
    const rest: Env[] = [];
    while (rest.filter((e) => e.type === "job.result").length + terminalsBefore < JOBS) {
      rest.push(await c.next((e) => e.event_seq !== undefined, 15_000));
    }
    assertGapFree(rest, last + 1);
    const all = [...seqd, ...rest];
    const results = all.filter((e) => e.type === "job.result");
    equal(results.length, JOBS);
    equal(new Set(results.map((e) => e.job_id)).size, JOBS);
    deepEqual(new Set(results.map((e) => e.trace_id)), new Set(traces));
    for (const r of results) {
      equal(r.payload.result.echo.length, BIG);
    }
  } finally {
    raw.close();
  }
});

Deno.test("a client that pauses reading for less than the stall timeout catches up with nothing lost", async () => {
  await using server = await startServer({ maxBufferedBytes: 64 * 1024, stallTimeoutMs: 1500 });
  const raw = await RawWs.open(server.url);
  try {
    const w = await rawHello(raw);
    const traces = await flood(raw, w.session_id!);
    await new Promise((r) => setTimeout(r, 700));
    const got: Env[] = [];
    while (got.filter((e) => e.type === "job.result").length < JOBS) {
      const f = await raw.readFrame(10_000);
      if (!f) throw new Error(`connection ended after ${got.length} envelopes`);
      if (f.opcode === 8) throw new Error("the runtime closed a client that was reading");
      if (f.opcode === 1) got.push(JSON.parse(new TextDecoder().decode(f.payload)));
    }
    assertGapFree(got, 1);
    const results = got.filter((e) => e.type === "job.result");
    deepEqual(new Set(results.map((e) => e.trace_id)), new Set(traces));
    for (const r of results) equal(r.payload.result.echo.length, BIG);
  } finally {
    raw.close();
  }
});
