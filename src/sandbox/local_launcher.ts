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

/** Launches Web Workers in the runtime's own process. */
export class LocalLauncher implements AgentLauncher {
  #workers = new Set<Worker>();

  /**
   * Starts a worker.
   *
   * @param spec what to start
   * @param handlers where its messages go
   * @returns the channel
   */
  launch(spec: LaunchSpec, handlers: ChannelHandlers): AgentChannel {
    const worker = new Worker(workerEntryUrl(spec.agentUrl), {
      type: "module",
      name: spec.jobId,
      // deno-lint-ignore no-explicit-any
      deno: { permissions: spec.permissions } as any,
    });
    this.#workers.add(worker);
    let alive = true;
    const end = () => {
      if (!alive) return;
      alive = false;
      worker.terminate();
      this.#workers.delete(worker);
    };
    worker.onmessage = (e: MessageEvent) => handlers.message(e.data);
    worker.onerror = (e: ErrorEvent) => {
      // Without this the worker's uncaught error would propagate to the runtime.
      e.preventDefault();
      handlers.crash(e.message ?? "uncaught error in agent");
    };
    worker.onmessageerror = () => handlers.crash("agent sent a message that could not be read");
    return {
      post: (msg) => {
        if (alive) worker.postMessage(msg);
      },
      // A forced kill of a worker stuck in synchronous code may leave its
      // thread running (Deno 2.9); only a process boundary fixes that, which
      // is why production uses HostLauncher.
      kill: end,
    };
  }

  /** Terminates every worker. */
  close(): Promise<void> {
    for (const w of this.#workers) w.terminate();
    this.#workers.clear();
    return Promise.resolve();
  }
}
