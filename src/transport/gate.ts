/**
 * The TCP gate in front of the HTTP server. `Deno.serve` (2.9) caps neither
 * open connections nor the time a connection may take to send its request,
 * and its accept loop ends for good on the first accept error: at the fd
 * limit `server.finished` rejects with EMFILE and the port is closed. So the
 * runtime accepts connections itself: it caps them in total and per peer
 * address (new connections push out the oldest ones not yet upgraded, so
 * idle connections cannot lock a real client out), closes connections that
 * are not upgraded and hear nothing from the server within a timeout,
 * survives accept errors, and relays each connection, once its first bytes
 * arrive, to a `Deno.serve` on a private loopback port that answers only
 * connections the gate made.
 *
 * A WebSocket upgrade of one of `webSocketPaths`, read exactly, is not
 * relayed: the handler gets the request itself, with an `upgrade` in its
 * info, and once it returns the response `upgrade` made the gate writes the
 * 101 and speaks WebSocket on the client's own connection
 * (`gate_socket.ts`): one hop, one fd, no Deno WebSocket behind it. Any
 * other response to such a request is written back and the connection closed.
 *
 * A plain `GET` of one of `directPaths` (the health checks), read exactly,
 * is not relayed either: the handler answers it and the gate writes the
 * response on the client's connection, which stays open for the next
 * request (until `Connection: close` or the header timeout). A relayed
 * request may wait for up to three turns of the main thread (the gate reads
 * it, the server behind answers it, the gate relays the answer), and under
 * load each may wait behind a long one; this one waits for one, as a
 * `session.ping` does.
 *
 * @module
 */
import type { Logger } from "../logger.ts";
import {
  DEFAULT_GATE_SOCKET_TIMINGS,
  type GateConn,
  type GateSocketTimings,
  GateWebSocket,
} from "./gate_socket.ts";
import { acceptKey, readGetHead, readUpgradeHead } from "./upgrade_head.ts";

/** The gate's limits. */
export interface GateLimits {
  /** Open connections in all; past it the oldest not yet upgraded is closed, or the newcomer. */
  maxConnections: number;
  /** Open connections from one peer address, the same way. */
  maxConnectionsPerAddress: number;
  /**
   * Connections relayed to the server behind at once (each holds three fds);
   * past it the oldest relayed one not upgraded is closed, or the newcomer.
   * WebSocket upgrades the gate speaks itself hold one fd and do not count.
   */
  maxRelayed: number;
  /**
   * How long a connection not upgraded to a WebSocket may go without an
   * answer from the server (its request is incomplete, or it idles between
   * requests) before it is closed (ms).
   */
  headerTimeoutMs: number;
}

/** Defaults of {@linkcode GateLimits}, about {@linkcode gateLimitsFor}'s for an fd limit of 20,000. */
export const DEFAULT_GATE_LIMITS: GateLimits = {
  maxConnections: 8192,
  maxConnectionsPerAddress: 4096,
  maxRelayed: 2048,
  headerTimeoutMs: 10_000,
};

/** Fds kept for the store, sandbox processes and their pipes, whatever the connections hold. */
const FD_RESERVE = 256;

/**
 * Default limits under an fd limit. A connection the gate serves itself (a
 * WebSocket on `webSocketPaths`, or one still sending its request) holds one
 * fd; a relayed one three (the client's, and both ends of the private one).
 * Connections get half of what the reserve leaves and relayed ones an
 * eighth, so even at both caps they hold three quarters of it
 * (`B/8 × 3 + 3B/8 × 1`), the rest left for what their sessions open. One
 * address gets half the connections.
 *
 * @param fdLimit the process's soft `RLIMIT_NOFILE`, when known
 * @returns the limits
 * @example
 * ```ts
 * import { gateLimitsFor } from "./gate.ts";
 * gateLimitsFor(1280).maxConnections; // 512 (1024 fds past the reserve; 128 relayed)
 * ```
 */
export function gateLimitsFor(fdLimit: number | undefined): GateLimits {
  if (fdLimit === undefined || !Number.isFinite(fdLimit)) return DEFAULT_GATE_LIMITS;
  const budget = fdLimit - FD_RESERVE;
  const total = Math.max(16, Math.min(16_384, Math.floor(budget / 2)));
  return {
    ...DEFAULT_GATE_LIMITS,
    maxConnections: total,
    maxConnectionsPerAddress: Math.ceil(total / 2),
    maxRelayed: Math.max(4, Math.min(4096, Math.floor(budget / 8))),
  };
}

/** What the handler learns about a gated connection. */
export interface GatedInfo extends Deno.ServeHandlerInfo<Deno.NetAddr> {
  /** Whether the peer's connection is TLS. */
  secure: boolean;
  /** Drops the connection at once, whatever is still queued to it. */
  abort(): void;
  /**
   * Present when the gate itself can take this request's WebSocket upgrade:
   * like `Deno.upgradeWebSocket`, it returns the socket and the response to
   * return; the socket opens once that response is returned.
   */
  upgrade?: (req: Request) => GatedUpgrade;
}

/** What {@linkcode GatedInfo.upgrade} returns. */
export interface GatedUpgrade {
  /** The socket; say how to serve it with `serve` before returning `response`. */
  socket: GateWebSocket;
  /** The response to return; the gate writes the 101 in its place. */
  response: Response;
}

/** A request handler behind the gate. */
export type GatedHandler = (req: Request, info: GatedInfo) => Response | Promise<Response>;

/** Options of {@linkcode serveGated}. */
export interface GateOptions {
  /** Interface to listen on. */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** PEM certificate and key: serve TLS. */
  tls?: { cert: string; key: string };
  /** Connection limits. */
  limits: GateLimits;
  /** Where accept errors are reported. */
  log: Logger;
  /** Request paths whose WebSocket upgrades the gate answers on the client's connection. */
  webSocketPaths?: readonly string[];
  /**
   * Request paths whose plain `GET`s the gate answers on the client's
   * connection (small answers computed from memory: the health checks).
   */
  directPaths?: readonly string[];
  /** Keepalive and close wait of those sockets (tests shorten them). */
  webSocketTimings?: Partial<GateSocketTimings>;
}

/** A running gate and the server behind it. */
export interface GatedServer {
  /** The public address. */
  readonly addr: Deno.NetAddr;
  /** The private loopback address of the server behind the gate. */
  readonly inner: Deno.NetAddr;
  /** Connections open now. */
  readonly connections: number;
  /** Of those, the ones relayed to the server behind. */
  readonly relayed: number;
  /** Resolves once the gate and the server behind it have stopped. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, drops every connection and stops the server behind.
   *
   * @returns resolves once stopped
   */
  shutdown(): Promise<void>;
}

/** First reads are small: an idle connection should cost little memory. */
const FIRST_READ_BYTES = 4 * 1024;
/**
 * A relay direction waits for data in a small buffer: an idle session's two
 * pending reads would otherwise pin 32 KiB between them (most of what a
 * session cost). A read that fills it borrows a large buffer until a read
 * comes up short, so a stream still moves in large chunks.
 */
const IDLE_READ_BYTES = 1024;
const RELAY_READ_BYTES = 16 * 1024;
/** An accept error (EMFILE above all) is retried after this long, and logged at most this often. */
const ACCEPT_RETRY_MS = 100;
const ACCEPT_LOG_EVERY_MS = 10_000;
const UPGRADED = new TextEncoder().encode("HTTP/1.1 101 ");

/** One client connection through the gate. */
class Link implements GateConn {
  readonly outer: Deno.Conn;
  readonly address: string;
  inner: Deno.Conn | undefined;
  /** Counted among the relayed connections (from before its private connection opens). */
  relayed = false;
  upgraded = false;
  closed = false;
  timer: ReturnType<typeof setTimeout> | undefined;
  onClose: (() => void) | undefined;

  constructor(outer: Deno.Conn, address: string) {
    this.outer = outer;
    this.address = address;
  }

  /** The client's connection, for a socket the gate speaks itself. */
  get conn(): Deno.Conn {
    return this.outer;
  }

  drop(): void {
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    for (const conn of [this.outer, this.inner]) {
      try {
        conn?.close();
      } catch {
        // already closed by the peer
      }
    }
    this.onClose?.();
  }
}

/**
 * Serves `handler` behind a gate on `hostname:port`.
 *
 * @param options where to listen, TLS, limits, logger
 * @param handler answers requests of admitted connections
 * @returns the running server
 * @example
 * ```ts ignore
 * const server = serveGated({ hostname: "0.0.0.0", port: 7777, limits: DEFAULT_GATE_LIMITS, log }, runtime.fetch);
 * await server.finished;
 * ```
 */
export function serveGated(options: GateOptions, handler: GatedHandler): GatedServer {
  const { limits, log } = options;
  const listener = options.tls
    ? Deno.listenTls({ hostname: options.hostname, port: options.port, ...options.tls })
    : Deno.listen({ hostname: options.hostname, port: options.port });
  const links = new Set<Link>();
  const perAddress = new Map<string, number>();
  const byInnerPort = new Map<number, Link>();
  const secure = options.tls !== undefined;
  const ac = new AbortController();

  const answer = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
    const link = byInnerPort.get(info.remoteAddr.port);
    // Anyone else on this machine reaching the private port directly is refused.
    if (!link) return new Response("connect through the public port", { status: 403 });
    return handler(req, {
      remoteAddr: link.outer.remoteAddr as Deno.NetAddr,
      completed: info.completed,
      secure,
      abort: () => link.close(),
    });
  };
  let inner = startInner(answer, ac.signal, log);
  const webSocketPaths = options.webSocketPaths ?? [];
  const timings = { ...DEFAULT_GATE_SOCKET_TIMINGS, ...options.webSocketTimings };
  let relayed = 0;

  const directPaths = options.directPaths ?? [];
  const infoOf = (link: Link): GatedInfo => ({
    remoteAddr: link.outer.remoteAddr as Deno.NetAddr,
    completed: Promise.resolve(),
    secure,
    abort: () => link.close(),
  });
  const handle = async (req: Request, info: GatedInfo): Promise<Response> => {
    try {
      return await handler(req, info);
    } catch (err) {
      log.error("request failed", { error: String(err) });
      return new Response("internal error", { status: 500 });
    }
  };

  // Answers a plain GET on the client's connection; whether it stays open for the next request.
  const answerDirect = async (link: Link, req: Request, close: boolean): Promise<boolean> => {
    const response = await handle(req, infoOf(link));
    if (link.closed) return false;
    (link.outer as Partial<Deno.TcpConn>).setNoDelay?.(true);
    await writeAll(link.outer, await serialize(response, close ? "close" : "keep-alive"));
    if (close) link.close();
    return !close && !link.closed;
  };

  // The handler decides, as it does for relayed requests; only the response
  // its `upgrade` made opens the socket here.
  const answerUpgrade = async (link: Link, key: string, req: Request): Promise<void> => {
    const accept = await acceptKey(key);
    let upgraded: GatedUpgrade | undefined;
    const info: GatedInfo = {
      ...infoOf(link),
      upgrade: (r) => {
        if (upgraded || r.headers.get("sec-websocket-key") !== key) {
          throw new TypeError("not the gate's upgrade request");
        }
        upgraded = { socket: new GateWebSocket(link, timings), response: new Response(null) };
        return upgraded;
      },
    };
    const response = await handle(req, info);
    if (link.closed) return;
    if (upgraded && response === upgraded.response && upgraded.socket.served) {
      (link.outer as Partial<Deno.TcpConn>).setNoDelay?.(true);
      await writeAll(link.outer, switchingProtocols(accept));
      if (link.closed) return;
      link.upgraded = true;
      clearTimeout(link.timer);
      link.timer = undefined;
      upgraded.socket.open();
      return;
    }
    await writeAll(link.outer, await serialize(response, "close", MAX_REFUSAL_BODY));
    link.close();
  };

  const admit = (link: Link): boolean => {
    const sameAddress = (l: Link) => l.address === link.address;
    if ((perAddress.get(link.address) ?? 0) >= limits.maxConnectionsPerAddress) {
      if (!evictOldestWaiting(links, sameAddress)) return false;
    }
    if (links.size >= limits.maxConnections && !evictOldestWaiting(links, () => true)) {
      return false;
    }
    links.add(link);
    perAddress.set(link.address, (perAddress.get(link.address) ?? 0) + 1);
    link.onClose = () => {
      links.delete(link);
      const left = (perAddress.get(link.address) ?? 1) - 1;
      if (left > 0) perAddress.set(link.address, left);
      else perAddress.delete(link.address);
      if (link.relayed) relayed--;
      if (link.inner) byInnerPort.delete((link.inner.localAddr as Deno.NetAddr).port);
    };
    return true;
  };

  // Returns once both pumps run: their own frames carry the connection from
  // then on, each closing the link when it ends, so an idle session keeps no
  // frame, race or handler of this function alive (nor its request head).
  const relay = async (link: Link): Promise<void> => {
    let head = await readHead(link.outer);
    while (head !== null && !link.closed && directPaths.length > 0) {
      const direct = readGetHead(head, directPaths);
      const request = direct && requestOf(direct, secure);
      if (!direct || !request) break;
      if (!await answerDirect(link, request, direct.close)) return;
      // Idle between requests, as a relayed connection may be.
      armTimeout(link, limits.headerTimeoutMs);
      head = await readHead(link.outer);
    }
    if (head === null || link.closed) return link.close();
    const upgrade = webSocketPaths.length > 0 ? readUpgradeHead(head, webSocketPaths) : undefined;
    if (upgrade) {
      const request = requestOf(upgrade, secure);
      if (request) return await answerUpgrade(link, upgrade.key, request);
    }
    if (relayed >= limits.maxRelayed && !evictOldestWaiting(links, (l) => l.relayed)) {
      return link.close();
    }
    link.relayed = true;
    relayed++;
    const conn = await Deno.connect({ hostname: inner.addr.hostname, port: inner.addr.port });
    if (link.closed) return conn.close();
    // Without these, Nagle's algorithm holds each small frame on both hops
    // until the peer's delayed ACK: ~40 ms on every reply.
    conn.setNoDelay(true);
    (link.outer as Partial<Deno.TcpConn>).setNoDelay?.(true);
    link.inner = conn;
    byInnerPort.set((conn.localAddr as Deno.NetAddr).port, link);
    await writeAll(conn, head);
    pump(link, link.outer, conn, undefined);
    pump(link, conn, link.outer, (chunk) => {
      if (link.upgraded) return;
      if (startsWith(chunk, UPGRADED)) {
        link.upgraded = true;
        clearTimeout(link.timer);
        link.timer = undefined;
      } else armTimeout(link, limits.headerTimeoutMs);
    });
  };

  const accepting = (async () => {
    let lastLog = 0;
    while (!ac.signal.aborted) {
      let outer: Deno.Conn;
      try {
        outer = await listener.accept();
      } catch (err) {
        if (ac.signal.aborted || err instanceof Deno.errors.BadResource) return;
        // Out of fds (or another transient failure): keep serving what is open, retry soon.
        if (Date.now() - lastLog > ACCEPT_LOG_EVERY_MS) {
          lastLog = Date.now();
          log.warn("accept failed; retrying", { error: String(err), open: links.size });
        }
        await new Promise((r) => setTimeout(r, ACCEPT_RETRY_MS));
        continue;
      }
      const link = new Link(outer, (outer.remoteAddr as Deno.NetAddr).hostname);
      if (!admit(link)) {
        link.closed = true;
        outer.close();
        continue;
      }
      armTimeout(link, limits.headerTimeoutMs);
      relay(link).catch(() => link.close());
    }
  })();

  // The server behind should never see an fd shortage the caps allow, but
  // if its accept loop dies anyway a new one takes over; it must not end the process.
  const watchInner = (): void => {
    inner.finished.catch((err) => {
      if (ac.signal.aborted) return;
      log.error("internal server failed; restarting it", { error: String(err) });
      inner = startInner(answer, ac.signal, log);
      watchInner();
    });
  };
  watchInner();

  return {
    addr: listener.addr as Deno.NetAddr,
    get inner() {
      return inner.addr;
    },
    get connections() {
      return links.size;
    },
    get relayed() {
      return relayed;
    },
    finished: accepting.then(() => inner.finished.catch(() => {})),
    async shutdown() {
      ac.abort();
      try {
        listener.close();
      } catch {
        // already closed
      }
      for (const link of [...links]) link.close();
      await accepting;
      await inner.finished.catch(() => {});
    },
  };
}

/**
 * Starts the private server behind the gate.
 *
 * @param answer the request handler
 * @param signal stops it
 * @param log where its errors go
 * @returns the server
 */
function startInner(
  answer: Deno.ServeHandler<Deno.NetAddr>,
  signal: AbortSignal,
  log: Logger,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal,
    onListen() {},
    onError(err) {
      log.error("request failed", { error: String(err) });
      return new Response("internal error", { status: 500 });
    },
  }, answer);
}

/**
 * Closes the oldest connection matching `pick` that is not upgraded.
 *
 * @returns whether one was closed
 */
function evictOldestWaiting(links: Set<Link>, pick: (link: Link) => boolean): boolean {
  for (const link of links) {
    if (!link.upgraded && pick(link)) {
      link.close();
      return true;
    }
  }
  return false;
}

function armTimeout(link: Link, ms: number): void {
  clearTimeout(link.timer);
  link.timer = setTimeout(() => link.close(), ms);
}

/**
 * Copies `from` to `to` until either ends, then closes the link; `seen`
 * looks at each chunk first. The next read waits for the write to complete,
 * so the gate holds one buffer per direction: what a client does not read
 * backs up into the server's socket, where the session sees it and pauses.
 * It never rejects: a read or write error ends the link like an end of stream.
 */
async function pump(
  link: Link,
  from: Deno.Conn,
  to: Deno.Conn,
  seen: ((chunk: Uint8Array) => void) | undefined,
): Promise<void> {
  const idle = new Uint8Array(IDLE_READ_BYTES);
  let buf = idle;
  try {
    while (true) {
      const n = await from.read(buf);
      if (n === null) return;
      seen?.(buf.subarray(0, n));
      await writeAll(to, buf.subarray(0, n));
      if (n === buf.length) {
        if (buf === idle) buf = new Uint8Array(RELAY_READ_BYTES);
      } else buf = idle;
    }
  } catch {
    // the peer or the link closed the connection
  } finally {
    link.close();
  }
}

/**
 * Reads a connection's first bytes into a copy of their own size: this
 * function's frame, and so its buffer, is gone once it returns, while the
 * caller's frame lives as long as the connection.
 */
async function readHead(conn: Deno.Conn): Promise<Uint8Array | null> {
  const buf = new Uint8Array(FIRST_READ_BYTES);
  const n = await conn.read(buf);
  return n === null ? null : buf.slice(0, n);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

function startsWith(chunk: Uint8Array, prefix: Uint8Array): boolean {
  if (chunk.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (chunk[i] !== prefix[i]) return false;
  return true;
}

/**
 * The web-standard request of a head the gate read; undefined when its Host
 * makes no URL (the HTTP server behind answers that as it always did).
 */
function requestOf(
  head: { host: string; path: string; headers: Array<[string, string]> },
  secure: boolean,
): Request | undefined {
  try {
    const url = new URL(`${secure ? "https" : "http"}://${head.host}${head.path}`);
    if (url.pathname !== head.path) return undefined;
    return new Request(url, { method: "GET", headers: head.headers });
  } catch {
    return undefined;
  }
}

/** The 101 as `Deno.upgradeWebSocket`'s server writes it (no subprotocol, no extension). */
function switchingProtocols(accept: string): Uint8Array {
  return new TextEncoder().encode(
    "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n" +
      `sec-websocket-accept: ${accept}\r\ndate: ${new Date().toUTCString()}\r\n\r\n`,
  );
}

/**
 * The reason phrases the HTTP server behind writes (hyper's canonical
 * ones), so a refusal reads the same on either path. A status not here
 * gets an empty phrase, which HTTP/1.1 allows.
 */
const REASON_PHRASES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  413: "Payload Too Large",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** Responses to an upgrade request that is refused are small: a longer body is cut. */
const MAX_REFUSAL_BODY = 16 * 1024;

/**
 * A response the gate writes itself, whole: one refusing an upgrade (the
 * connection closed after it) or a direct answer.
 */
async function serialize(
  response: Response,
  connection: "close" | "keep-alive",
  maxBody = Infinity,
): Promise<Uint8Array> {
  const body = new Uint8Array(await response.arrayBuffer()).subarray(0, maxBody);
  const reason = response.statusText || REASON_PHRASES[response.status] || "";
  let head = `HTTP/1.1 ${response.status} ${reason}\r\n`;
  for (const [name, value] of response.headers) {
    if (name === "content-length" || name === "connection" || name === "transfer-encoding") {
      continue;
    }
    head += `${name}: ${value}\r\n`;
  }
  head += `content-length: ${body.length}\r\nconnection: ${connection}\r\ndate: ${
    new Date().toUTCString()
  }\r\n\r\n`;
  const headBytes = new TextEncoder().encode(head);
  const out = new Uint8Array(headBytes.length + body.length);
  out.set(headBytes);
  out.set(body, headBytes.length);
  return out;
}
