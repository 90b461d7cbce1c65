/**
 * The runtime's end of one sandbox process's control channel: a Unix socket
 * in a private directory, which accepts exactly one connection, the one that
 * presents the token the process read on its stdin, and then stops
 * listening and removes its path, so nothing can connect afterwards. The
 * runtime answers with a second secret, so a process that reached something
 * else at that path (an impostor listener) refuses to serve it.
 *
 * @module
 */
import { encodeFrame, FrameReader } from "./host/frames.ts";
import { type HostIntro, type HostReport, MAX_REPORT_FRAME_BYTES } from "./host/protocol.ts";

/** How long a connection may take to present its token (ms). */
const TOKEN_TIMEOUT_MS = 10_000;

/** An authenticated control connection. */
export interface ControlConnection {
  /** The socket. */
  conn: Deno.Conn;
  /** The frames the process sends after its token. */
  frames: FrameReader;
}

/**
 * A private directory for control sockets, mode 0700 so no other user can
 * reach a socket in it. Workers must never reach it either, so every lease
 * whose grant would cover it is refused; that is why it lives under the
 * user's runtime or cache directory (beside Deno's own cache, which leases
 * cannot cover anyway) rather than in the system temp dir, where it would
 * make every `/tmp/**` lease unusable.
 *
 * @returns the directory's path
 */
export async function makeControlDir(): Promise<string> {
  const base = controlBase();
  if (base) await Deno.mkdir(base, { recursive: true, mode: 0o700 });
  const dir = await Deno.makeTempDir({ prefix: "arcp_ctl_", dir: base });
  await Deno.chmod(dir, 0o700);
  return await Deno.realPath(dir);
}

/** `$XDG_RUNTIME_DIR/arcp`, else `$HOME/.cache/arcp`, else undefined (the system temp dir). */
function controlBase(): string | undefined {
  const runtimeDir = Deno.env.get("XDG_RUNTIME_DIR");
  if (runtimeDir) return `${runtimeDir}/arcp`;
  const home = Deno.env.get("HOME");
  return home ? `${home}/.cache/arcp` : undefined;
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Compares secrets in time independent of where they differ. */
function sameSecret(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** One process's listener, waiting for its authenticated connection. */
export class ControlEndpoint {
  /** What the process must be told on stdin about its control socket. */
  readonly intro: Omit<HostIntro, "ceiling">;
  /** Settles with the authenticated connection; rejects when none came in time or it was closed. */
  readonly connected: Promise<ControlConnection>;
  #listener: Deno.Listener;
  #closed = false;

  /**
   * Listens at a fresh path in `dir`.
   *
   * @param dir a private directory from {@linkcode makeControlDir}
   * @param timeoutMs how long the process has to connect
   */
  constructor(dir: string, timeoutMs: number) {
    const path = `${dir}/${randomHex(12)}.sock`;
    this.intro = { path, token: randomHex(32), answer: randomHex(32) };
    this.#listener = Deno.listen({ transport: "unix", path });
    this.connected = this.#accept(timeoutMs);
    this.connected.catch(() => {});
  }

  async #accept(timeoutMs: number): Promise<ControlConnection> {
    const timer = setTimeout(() => this.close(), timeoutMs);
    try {
      while (!this.#closed) {
        let conn: Deno.Conn;
        try {
          conn = await this.#listener.accept();
        } catch {
          break;
        }
        const authed = await this.#authenticate(conn);
        if (authed) return authed;
      }
      throw new Error("the sandbox process did not connect to its control socket in time");
    } finally {
      clearTimeout(timer);
      this.close();
    }
  }

  /** Reads the first frame; anything but the token closes that connection. */
  async #authenticate(conn: Deno.Conn): Promise<ControlConnection | undefined> {
    const frames = new FrameReader(conn, MAX_REPORT_FRAME_BYTES);
    const timer = setTimeout(() => conn.close(), TOKEN_TIMEOUT_MS);
    try {
      const first = await frames.next();
      const token = first === undefined
        ? undefined
        : (JSON.parse(first) as Partial<Extract<HostReport, { token: string }>>)?.token;
      if (typeof token !== "string" || !sameSecret(token, this.intro.token)) {
        conn.close();
        return undefined;
      }
      // Stop listening before answering: from here on, no one else gets in.
      this.close();
      const writer = conn.writable.getWriter();
      await writer.write(encodeFrame({ c: "answer", answer: this.intro.answer }));
      writer.releaseLock();
      return { conn, frames };
    } catch {
      try {
        conn.close();
      } catch {
        // already closed by the timer
      }
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops listening and removes the socket's path. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    try {
      Deno.removeSync(this.intro.path);
    } catch {
      // Deno removes a Unix socket's path when its listener closes.
    }
  }
}
