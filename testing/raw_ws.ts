/**
 * A client-side WebSocket over a raw TCP connection, with the handshake and
 * framing done by hand, for tests that play a client which stops reading:
 * the WebSocket class reads its socket all the time, this one reads only
 * when asked, so the kernel buffers fill exactly as with a stuck peer.
 *
 * @module
 */
import { equal } from "assert";
import type { Env } from "./ws_client.ts";

/** One WebSocket frame as read. */
export interface Frame {
  opcode: number;
  payload: Uint8Array;
}

/** A minimal client-side WebSocket over a raw TCP connection (RFC 6455, no extensions). */
export class RawWs {
  readonly conn: Deno.Conn;
  #buf = new Uint8Array(0);
  #reading: Promise<Uint8Array | null> | undefined;
  #eof = false;
  #n = 0;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /**
   * Connects and performs the opening handshake.
   *
   * @param url `ws://host:port/path` (with `conn`, `wss://` too)
   * @param conn a connection already open to the server (TLS, say); by default a TCP one to `url`
   * @returns the open connection
   */
  static async open(url: string, conn?: Deno.Conn): Promise<RawWs> {
    const u = new URL(url);
    conn ??= await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
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

  /** Whether the server ended the connection (or reset it): nothing more will be read. */
  get ended(): boolean {
    return this.#eof;
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
   * Writes bytes as they are: frames a well-behaved client would not send.
   *
   * @param bytes what to write
   */
  async sendRaw(bytes: Uint8Array): Promise<void> {
    await this.#writeAll(bytes);
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

  /**
   * Says hello as alice and returns the welcome.
   *
   * @param features the features to ask for
   * @returns the welcome
   */
  async hello(features: string[]): Promise<Env> {
    await this.send({
      type: "session.hello",
      payload: {
        client: { name: "raw", version: "0" },
        auth: { scheme: "bearer", token: "alice-token" },
        capabilities: { encodings: ["json"], features },
      },
    });
    const [w] = await this.readUntil(() => true);
    equal(w.type, "session.welcome", JSON.stringify(w.payload));
    return w;
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
