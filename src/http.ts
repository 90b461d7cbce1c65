/**
 * The runtime's HTTP side, a hono app on Deno's adapter: `GET /arcp`
 * upgrades to the WebSocket transport, `GET /healthz` reports liveness and
 * state, `GET /readyz` readiness (503 also while the runtime drains),
 * `GET /metrics` the operator metrics in the Prometheus text format,
 * `/v1/*` the management API (`src/api/`) when the runtime gives one, and
 * `GET /` the operator dashboard (`src/dashboard/`). While the runtime shuts
 * down, new connections are refused with 503 and both checks say so; while
 * storage fails, `/healthz` says so (still 200: the process is alive, and
 * restarting it frees no disk) and `/readyz` is 503.
 *
 * `/metrics` is unauthenticated, like the health checks: it names no job,
 * session or principal, only counts, but serve the runtime on loopback or a
 * private network if even counts are not for everyone.
 *
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { getConnInfo } from "hono/deno";
import type { GatedInfo } from "./transport/gate.ts";
import type { Transport, TransportHandler } from "./transport/transport.ts";
import { acceptWebSocket, type WebSocketOptions } from "./transport/websocket.ts";
import { type Metrics, METRICS_CONTENT_TYPE } from "./metrics.ts";
import { dashboardRoutes } from "./dashboard/mod.ts";

/**
 * The WebSocket endpoint's path: servers in front of the handler (the gate)
 * may speak its upgrades themselves.
 */
export const WEBSOCKET_PATH = "/arcp";

/**
 * The health checks' paths: answered from memory, so the gate may answer
 * their plain `GET`s itself rather than relay them (see `transport/gate.ts`).
 */
export const HEALTH_PATHS: readonly string[] = ["/healthz", "/readyz"];

/** Whether the runtime's storage commits, as the health checks report it. */
export interface StorageState {
  /** Whether commits succeed (or nothing says otherwise). */
  ok: boolean;
  /** The failing commit's error, while failing. */
  error?: string;
  /** When commits started failing (RFC 3339), while failing. */
  since?: string;
}

/** Options of {@linkcode httpHandler}. */
export interface HttpOptions {
  /** Name and version the health check reports. */
  runtime: { name: string; version: string };
  /** Largest inbound WebSocket frame in bytes. */
  maxFrameBytes: number;
  /** Bytes queued to one socket past which it is dropped. */
  maxSocketBytes: number;
  /** Whether the runtime is shutting down. */
  isClosing: () => boolean;
  /** Jobs running now, for the health check. */
  liveJobs: () => number;
  /** Whether storage commits, for the health and readiness checks. */
  storage: () => StorageState;
  /** What `GET /metrics` renders. */
  metrics: Metrics;
  /** Builds the handler of one new connection. */
  connect: (transport: Transport) => TransportHandler;
  /** Answers the management API under `/v1` (with the peer's address), when the runtime serves one. */
  api?: (req: Request, peer: string) => Response | Promise<Response>;
  /** Whether the runtime drains (readiness turns 503; connections are still taken). */
  isDraining?: () => boolean;
}

/**
 * What the server tells the handler about a request's connection: Deno's
 * info, plus TLS and abort when the runtime's gate relays it.
 */
export type PeerInfo = Deno.ServeHandlerInfo | GatedInfo;

/** A web-standard request handler, as `Deno.serve` (or the gate) takes it. */
export type FetchHandler = (req: Request, info?: PeerInfo) => Response | Promise<Response>;

/**
 * The HTTP handler of a runtime.
 *
 * @param options what the routes answer with and how connections start
 * @returns the handler
 * @example
 * ```ts ignore
 * const fetch = httpHandler({
 *   runtime, maxFrameBytes, maxSocketBytes, isClosing, liveJobs, storage, metrics, connect,
 * });
 * Deno.serve({ port: 7777 }, fetch);
 * ```
 */
export function httpHandler(options: HttpOptions): FetchHandler {
  const { runtime, isClosing } = options;
  const app = new Hono<{ Bindings: Partial<GatedInfo> }>();
  app.get("/healthz", (c) => {
    const storage = options.storage();
    return c.json(
      { ok: !isClosing() && storage.ok, runtime, live_jobs: options.liveJobs(), storage },
      isClosing() ? 503 : 200,
    );
  });
  app.get("/readyz", (c) => {
    const storage = options.storage();
    const reasons = [
      ...(isClosing() ? ["shutting_down"] : []),
      ...(options.isDraining?.() ? ["draining"] : []),
      ...(storage.ok ? [] : ["storage_failing"]),
    ];
    return reasons.length === 0
      ? c.json({ ready: true })
      : c.json({ ready: false, reasons, storage }, 503);
  });
  const api = options.api;
  if (api) app.all("/v1/*", (c) => api(c.req.raw, peerAddress(c)));
  app.get(
    "/metrics",
    async (c) =>
      c.body(await options.metrics.render(), 200, { "content-type": METRICS_CONTENT_TYPE }),
  );
  app.get(WEBSOCKET_PATH, refuseWhileClosing(isClosing), (c) => {
    if (c.req.header("upgrade") !== "websocket") return c.text("expected a WebSocket upgrade", 426);
    const transport: WebSocketOptions = {
      maxFrameBytes: options.maxFrameBytes,
      maxQueuedBytes: options.maxSocketBytes,
      remoteAddr: peerAddress(c),
      secure: c.env.secure ?? new URL(c.req.url).protocol === "https:",
      abort: c.env.abort,
    };
    // ARCP names no subprotocol: none is answered, whatever the client
    // offers. The upgrade is done here rather than through hono's helper,
    // whose socket handlers hold the request's context (request, headers,
    // signal) for as long as the connection lives. Behind the gate, the gate
    // speaks the socket itself on the client's connection when it can.
    const upgrade = c.env.upgrade;
    if (upgrade) {
      const { socket, response } = upgrade(c.req.raw);
      socket.serve(transport, options.connect);
      return response;
    }
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    acceptWebSocket(socket, transport, options.connect);
    return response;
  });
  app.route("/", dashboardRoutes());
  return (req, info) => app.fetch(req, info ?? {});
}

/**
 * Refuses requests with 503 while the runtime shuts down.
 *
 * @param isClosing whether it is shutting down
 * @returns the middleware
 */
function refuseWhileClosing(isClosing: () => boolean): MiddlewareHandler {
  return async (c, next) => {
    if (isClosing()) return c.text("shutting down", 503);
    await next();
  };
}

/**
 * The peer's address, for the hello throttle.
 *
 * @param c the request's context
 * @returns its host name, or "unknown" when the server gave none (a direct
 *   `fetch` call, a Unix socket)
 */
function peerAddress(c: Context<{ Bindings: Partial<GatedInfo> }>): string {
  return c.env.remoteAddr ? getConnInfo(c).remote.address ?? "unknown" : "unknown";
}
