/**
 * The worker side of the sandbox. A job's worker entry module imports this
 * module first, so {@linkcode lockdown} runs before any agent code, then
 * imports the agent and hands it to {@linkcode serveAgent}.
 *
 * @module
 */
import type { AgentContext, AgentDefinition, ProgressBody } from "./agent.ts";
import type { HostMessage } from "./wire.ts";
import { EVENT_WINDOW } from "./limits.ts";

/**
 * Removes the channels a worker could use to reach other workers or keep
 * state outside its lease. Deno permissions do not cover these (measured on
 * Deno 2.9.6): `BroadcastChannel` crosses workers of one process, `caches`
 * persists to disk and a worker may spawn nested workers.
 */
function lockdown(): void {
  const g = globalThis as Record<string, unknown>;
  for (
    const name of ["BroadcastChannel", "caches", "Worker", "SharedWorker", "CacheStorage", "Cache"]
  ) {
    try {
      Object.defineProperty(g, name, { value: undefined, configurable: false, writable: false });
    } catch {
      delete g[name];
    }
  }
}

lockdown();

/** The worker's global scope, as far as this module uses it. */
const scope = globalThis as unknown as {
  postMessage(msg: unknown): void;
  onmessage: ((e: MessageEvent<HostMessage>) => void) | null;
};
const post = (msg: unknown) => scope.postMessage(msg);

/** Sends events within the credit the host grants, queueing the rest. */
class Outbox {
  #credit = EVENT_WINDOW;
  #queue: Array<{ msg: unknown; done: () => void }> = [];

  send(kind: string, body: Record<string, unknown>): Promise<void> {
    const msg = { t: "event", kind, body };
    if (this.#credit > 0 && this.#queue.length === 0) {
      this.#credit--;
      post(msg);
      return Promise.resolve();
    }
    return new Promise((done) => this.#queue.push({ msg, done }));
  }

  grant(n: number): void {
    this.#credit += n;
    while (this.#credit > 0 && this.#queue.length > 0) {
      const next = this.#queue.shift()!;
      this.#credit--;
      post(next.msg);
      next.done();
    }
  }

  /** Settles once everything queued has been handed to the host. */
  drained(): Promise<void> {
    if (this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const last = this.#queue[this.#queue.length - 1];
      const done = last.done;
      last.done = () => {
        done();
        resolve();
      };
    });
  }
}

function errorMessage(err: unknown): { t: "error"; name: string; message: string; code?: string } {
  if (err instanceof Error) {
    const raw = (err as unknown as { code?: unknown }).code;
    const code = typeof raw === "string" ? raw : undefined;
    return {
      t: "error",
      name: err.name,
      message: err.message || err.name,
      ...(code ? { code } : {}),
    };
  }
  return { t: "error", name: "Error", message: String(err) };
}

function makeContext(
  start: Extract<HostMessage, { t: "start" }>,
  outbox: Outbox,
  signal: AbortSignal,
): AgentContext {
  const emit = (kind: string, body: Record<string, unknown>) => outbox.send(kind, body);
  const opt = <T>(v: T | undefined, k: string) => (v === undefined ? {} : { [k]: v });
  return Object.freeze(
    {
      signal,
      jobId: start.jobId,
      traceId: start.traceId,
      lease: Object.freeze(structuredClone(start.lease)),
      log: (level, message, attributes) =>
        emit("log", { level, message, ...opt(attributes, "attributes") }),
      thought: (text) => emit("thought", { text }),
      status: (phase, message) => emit("status", { phase, ...opt(message, "message") }),
      progress: (p: ProgressBody) => emit("progress", { ...p }),
      metric: (name, value, unit, dims) =>
        emit("metric", { name, value, ...opt(unit, "unit"), ...opt(dims, "dims") }),
      toolCall: (tool, args, callId) => emit("tool_call", { tool, args, call_id: callId }),
      toolResult: (callId, result) => emit("tool_result", { call_id: callId, result }),
      artifact: (ref) => emit("artifact_ref", { ...ref }),
      emit: (kind, body) => {
        if (!/^x-vendor\./.test(kind)) {
          return Promise.reject(
            new TypeError(`emit: kind must look like x-vendor.<name>, got ${kind}`),
          );
        }
        return emit(kind, body);
      },
    } satisfies AgentContext,
  );
}

/**
 * Serves one agent in this worker: answers `describe`, runs it on `start`,
 * aborts it on `abort` and reports the outcome.
 *
 * @param agent the agent module's default export
 */
export function serveAgent(agent: AgentDefinition): void {
  const outbox = new Outbox();
  const abort = new AbortController();
  let started = false;
  scope.onmessage = async (e: MessageEvent<HostMessage>) => {
    const msg = e.data;
    if (msg.t === "describe") {
      post({
        t: "described",
        name: String(agent?.name),
        version: String(agent?.version),
        ...(typeof agent?.description === "string" ? { description: agent.description } : {}),
      });
    } else if (msg.t === "credit") {
      outbox.grant(msg.n);
    } else if (msg.t === "abort") {
      abort.abort(new DOMException(msg.reason, "AbortError"));
    } else if (msg.t === "start" && !started) {
      started = true;
      try {
        const value = await agent.run(msg.input, makeContext(msg, outbox, abort.signal));
        await outbox.drained();
        post({ t: "result", value: value === undefined ? null : value });
      } catch (err) {
        await outbox.drained();
        post(errorMessage(err));
      }
    }
  };
}
