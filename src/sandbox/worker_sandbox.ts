/**
 * Runs each job's agent in a fresh Web Worker whose Deno permissions come
 * from the job's lease, and turns what the worker sends into checked,
 * typed callbacks. Nothing the worker sends is trusted.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { EVENT_BODIES, isReservedKind, VENDOR_KIND } from "../protocol/events.ts";
import { describeZodError } from "../protocol/envelope.ts";
import type { Lease } from "../protocol/lease.ts";
import { EVENT_WINDOW, MAX_EVENT_BYTES, MAX_RESULT_BYTES } from "./limits.ts";
import { permissionsForLease } from "./permissions.ts";
import { type HostMessage, type WorkerMessage, WorkerMessageSchema } from "./wire.ts";
import { workerEntryUrl } from "./entry.ts";

/** What the sandbox needs to start a job. */
export interface SandboxJob {
  /** The job id. */
  jobId: string;
  /** The job's trace id. */
  traceId: string;
  /** File URL of the agent module. */
  agentUrl: string;
  /** The job's input. */
  input: unknown;
  /** The effective lease. */
  lease: Lease;
}

/** How a running agent reports back. Calls arrive in the order the agent made them. */
export interface SandboxListener {
  /** A checked event; the promise settles once the runtime has taken it. */
  onEvent(kind: string, body: Record<string, unknown>): Promise<void>;
  /** The agent returned. */
  onResult(value: unknown): void;
  /** The agent failed or broke the sandbox protocol. */
  onError(error: ArcpError): void;
}

/** A running agent. */
export interface AgentRun {
  /** Asks the agent to stop (aborts `ctx.signal`). */
  abort(reason: string): void;
  /** Ends the agent at once. */
  kill(): void;
}

/** Something that runs agents. The jobs layer knows only this interface. */
export interface Sandbox {
  /**
   * Starts one job's agent.
   *
   * @param job what to run
   * @param listener where its events and outcome go
   * @returns a handle to stop it
   */
  start(job: SandboxJob, listener: SandboxListener): AgentRun;
}

/** Kinds the runtime itself produces; an agent may not forge them. */
const RUNTIME_KINDS = new Set(["result_chunk", "delegate"]);

const PERMISSION_MESSAGE = /Requires (read|write|net|env|run|ffi|sys|import) access/;

/**
 * Maps an agent failure to its ARCP error: Deno permission refusals
 * (`NotCapable`, and the `TypeError` a denied `import()` throws) are
 * `PERMISSION_DENIED`, lease errors keep their code, the rest is
 * `INTERNAL_ERROR`.
 *
 * @param name the error's name
 * @param message its message
 * @param code its `code`, when it carried one
 * @returns the ARCP error
 */
export function agentFailure(name: string, message: string, code?: string): ArcpError {
  if (name === "NotCapable" || PERMISSION_MESSAGE.test(message)) {
    return new ArcpError("PERMISSION_DENIED", message);
  }
  if (code === "PERMISSION_DENIED" || code === "LEASE_EXPIRED" || code === "BUDGET_EXHAUSTED") {
    return new ArcpError(code, message);
  }
  return new ArcpError("INTERNAL_ERROR", `agent failed: ${message || name}`);
}

/**
 * Checks an event from an agent.
 *
 * @param kind the event kind
 * @param body the event body
 * @returns the body as it will be sent
 * @throws {ArcpError} when the kind is not the agent's to emit or the body is malformed or too large
 */
export function checkAgentEvent(
  kind: string,
  body: Record<string, unknown>,
): Record<string, unknown> {
  if (RUNTIME_KINDS.has(kind)) {
    throw new ArcpError("PERMISSION_DENIED", `agents may not emit ${kind} events directly`);
  }
  let checked = body;
  if (isReservedKind(kind)) {
    const parsed = EVENT_BODIES[kind].safeParse(body);
    if (!parsed.success) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `agent sent a bad ${kind} event: ${describeZodError(parsed.error, "body")}`,
      );
    }
    checked = parsed.data as Record<string, unknown>;
  } else if (!VENDOR_KIND.test(kind)) {
    throw new ArcpError(
      "INTERNAL_ERROR",
      `agent sent an event of unknown kind ${JSON.stringify(kind.slice(0, 64))}`,
    );
  }
  const size = JSON.stringify(checked).length;
  if (size > MAX_EVENT_BYTES) {
    throw new ArcpError(
      "INTERNAL_ERROR",
      `agent sent a ${kind} event of ${size} bytes; the cap is ${MAX_EVENT_BYTES}`,
    );
  }
  return checked;
}

/**
 * Checks an inline result: it must be JSON and fit the inline cap.
 *
 * @param value what the agent returned
 * @returns the JSON-safe result
 * @throws {ArcpError} `INTERNAL_ERROR` when it cannot be sent inline
 */
export function checkResult(value: unknown): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new ArcpError("INTERNAL_ERROR", `agent result is not JSON: ${(err as Error).message}`);
  }
  if (text === undefined) return null;
  if (text.length > MAX_RESULT_BYTES) {
    throw new ArcpError(
      "INTERNAL_ERROR",
      `agent result is ${text.length} bytes; the inline cap is ${MAX_RESULT_BYTES}`,
    );
  }
  return JSON.parse(text);
}

/** Runs agents in Web Workers in this process. */
export class WorkerSandbox implements Sandbox {
  /**
   * Starts one job's agent in a fresh worker.
   *
   * @param job what to run
   * @param listener where its events and outcome go
   * @returns a handle to stop it
   */
  start(job: SandboxJob, listener: SandboxListener): AgentRun {
    const worker = new Worker(workerEntryUrl(job.agentUrl), {
      type: "module",
      name: job.jobId,
      // deno-lint-ignore no-explicit-any
      deno: { permissions: permissionsForLease(job.lease) } as any,
    });
    let done = false;
    let inflight = 0;
    let toGrant = 0;
    const send = (msg: HostMessage) => {
      if (!done) worker.postMessage(msg);
    };
    const finish = () => {
      done = true;
      worker.terminate();
    };
    const fail = (error: ArcpError) => {
      if (done) return;
      finish();
      listener.onError(error);
    };
    const grant = () => {
      if (toGrant === 0) return;
      send({ t: "credit", n: toGrant });
      toGrant = 0;
    };
    worker.onmessage = (e: MessageEvent<unknown>) => {
      if (done) return;
      const parsed = WorkerMessageSchema.safeParse(e.data);
      if (!parsed.success) {
        fail(
          new ArcpError(
            "PERMISSION_DENIED",
            `agent broke the sandbox protocol: ${describeZodError(parsed.error, "message")}`,
          ),
        );
        return;
      }
      const msg: WorkerMessage = parsed.data;
      if (msg.t === "event") {
        if (++inflight > EVENT_WINDOW) {
          fail(
            new ArcpError(
              "INTERNAL_ERROR",
              `agent sent more than ${EVENT_WINDOW} events without waiting for the runtime`,
            ),
          );
          return;
        }
        let body: Record<string, unknown>;
        try {
          body = checkAgentEvent(msg.kind, msg.body);
        } catch (err) {
          fail(err as ArcpError);
          return;
        }
        listener.onEvent(msg.kind, body).then(() => {
          inflight--;
          if (toGrant++ === 0) queueMicrotask(grant);
        }, () => {});
      } else if (msg.t === "result") {
        let value: unknown;
        try {
          value = checkResult(msg.value);
        } catch (err) {
          fail(err as ArcpError);
          return;
        }
        finish();
        listener.onResult(value);
      } else if (msg.t === "error") {
        fail(agentFailure(msg.name, msg.message, msg.code));
      }
    };
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      fail(agentFailure("Error", e.message ?? "uncaught error"));
    };
    worker.onmessageerror = () =>
      fail(new ArcpError("INTERNAL_ERROR", "agent sent a message that could not be read"));
    send({
      t: "start",
      jobId: job.jobId,
      traceId: job.traceId,
      input: job.input,
      lease: job.lease,
    });
    return {
      abort: (reason) => send({ t: "abort", reason }),
      kill: () => {
        if (!done) finish();
      },
    };
  }
}
