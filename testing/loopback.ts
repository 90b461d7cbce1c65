/**
 * An HTTP server on a free loopback port, for tests and benchmarks that need
 * a real endpoint: the port is known as soon as the server is created.
 *
 * @module
 */

/** A server listening on 127.0.0.1. */
export interface LoopbackServer {
  /** The port it listens on. */
  port: number;
  /** Stops listening and waits for the server to finish. */
  close(): Promise<void>;
}

/**
 * Serves `handler` on 127.0.0.1 at a port the OS picks.
 *
 * @param handler the request handler
 * @returns the running server
 * @example
 * ```ts ignore
 * const server = serveLoopback(() => new Response("ok"));
 * await fetch(`http://127.0.0.1:${server.port}/`);
 * await server.close();
 * ```
 */
export function serveLoopback(handler: Deno.ServeHandler<Deno.NetAddr>): LoopbackServer {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    handler,
  );
  return {
    port: server.addr.port,
    async close() {
      ac.abort();
      await server.finished;
    },
  };
}
