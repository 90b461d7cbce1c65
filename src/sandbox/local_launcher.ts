/**
 * Starts agent workers in this process. Fast, but a worker that exhausts
 * its heap takes the whole process down (fatal V8 OOM), so production runs
 * use {@linkcode HostLauncher} instead; this one serves tests, embedding
 * and benchmarks that compare the two.
 *
 * @module
 */
import type { AgentChannel, AgentLauncher, ChannelHandlers, LaunchSpec } from "./channel.ts";
import { workerEntryUrl } from "./worker/entry.ts";
import { EgressProxy } from "./egress_proxy.ts";
import { readPosted } from "./worker/posted.ts";

/** Launches Web Workers in the runtime's own process. */
export class LocalLauncher implements AgentLauncher {
  /** Each live worker's end: terminates it and closes its egress proxy. */
  #ends = new Set<() => void>();

  /**
   * Starts a worker.
   *
   * @param spec what to start
   * @param handlers where its messages go
   * @returns the channel
   */
  launch(spec: LaunchSpec, handlers: ChannelHandlers): AgentChannel {
    const proxy = spec.egress.length > 0 ? new EgressProxy(spec.egress) : undefined;
    const worker = new Worker(workerEntryUrl(spec.agentUrl, proxy?.config), {
      type: "module",
      name: spec.jobId,
      deno: {
        permissions: { ...spec.permissions, net: proxy ? [proxy.address] : false },
        // deno-lint-ignore no-explicit-any
      } as any,
    });
    let alive = true;
    const end = () => {
      if (!alive) return;
      alive = false;
      proxy?.close();
      worker.terminate();
      this.#ends.delete(end);
    };
    this.#ends.add(end);
    worker.onmessage = (e: MessageEvent) => handlers.message(readPosted(e.data).msg);
    worker.onerror = (e: ErrorEvent) => {
      // Without this the worker's uncaught error would propagate to the runtime.
      e.preventDefault();
      handlers.crash(e.message ?? "uncaught error in agent");
    };
    worker.onmessageerror = () => handlers.crash("agent sent a message that could not be read");
    return {
      // One job per worker here: agents' `reuse` and `concurrency` apply to
      // sandbox processes only.
      post: (msg) => {
        if (msg.t === "credentials") proxy?.credentials.set(0, msg.credentials);
        if (alive) worker.postMessage({ ...msg, j: 0 });
      },
      // A forced end of a worker stuck in synchronous code may leave its
      // thread running (Deno 2.9); only a process boundary fixes that, which
      // is why production uses HostLauncher.
      end,
    };
  }

  /** Terminates every worker and closes their egress proxies. */
  close(): Promise<void> {
    for (const end of this.#ends) end();
    return Promise.resolve();
  }
}
