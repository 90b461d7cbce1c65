/**
 * Serving what an agent asks of the runtime (`ctx.tool`, the lease checks
 * behind `ctx.fs` and `ctx.fetch`, `ctx.delegate`). Every request is
 * checked against the job's lease first, and each one shows up in the job's
 * events as a `tool_call`/`tool_result` pair or a refusal.
 *
 * @module
 */
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import { newUlid } from "../protocol/ids.ts";
import { checkResult } from "../sandbox/sandbox.ts";
import { BUILTIN_TOOLS, type ToolHandler } from "./tools.ts";
import type { LiveJob } from "./live_job.ts";
import type { EmitEvent } from "./fanout.ts";

/** What serving agent calls needs of the jobs layer. */
export interface AgentCallsPort {
  /** Host-side tools by name, added to (or replacing) the built-in ones. */
  tools?: Readonly<Record<string, ToolHandler>>;
  /** Emits a `job.event`. */
  event: EmitEvent;
  /**
   * Runs `ctx.delegate`.
   *
   * @param parent the delegating job
   * @param args the agent's `delegate` call
   * @returns the child's result
   */
  delegate(parent: LiveJob, args: Record<string, unknown>): Promise<unknown>;
  /**
   * Serves `ctx.input()`.
   *
   * @param live the reading job
   * @returns the next input, or undefined once the input was ended
   */
  input(live: LiveJob): Promise<unknown>;
}

/** Dispatches an agent's requests of the runtime. */
export class AgentCalls {
  #port: AgentCallsPort;
  #tools: Readonly<Record<string, ToolHandler>>;

  /**
   * @param port the tools and how to emit and delegate
   */
  constructor(port: AgentCallsPort) {
    this.#port = port;
    this.#tools = { ...BUILTIN_TOOLS, ...port.tools };
  }

  /**
   * Serves one request.
   *
   * @param live the calling job
   * @param op `delegate`, `authorize`, `input` or `tool`
   * @param args the request's arguments
   * @returns what the agent gets back (for `authorize`, the canonical target)
   * @throws {ArcpError} the refusal or failure, already reported in the job's events
   */
  async call(live: LiveJob, op: string, args: Record<string, unknown>): Promise<unknown> {
    if (op === "delegate") return await this.#port.delegate(live, args);
    if (op === "authorize") return await this.#authorize(live, args);
    if (op === "input") return await this.#port.input(live);
    return await this.#tool(live, args);
  }

  async #authorize(live: LiveJob, args: Record<string, unknown>): Promise<string> {
    try {
      return await live.guard.check(String(args.ns), String(args.target));
    } catch (err) {
      throw this.#refuse(live, `call_${newUlid()}`, err);
    }
  }

  async #tool(live: LiveJob, args: Record<string, unknown>): Promise<unknown> {
    const name = String(args.name);
    const callId = `call_${newUlid()}`;
    await this.#port.event(live, "tool_call", {
      tool: name,
      args: args.args ?? null,
      call_id: callId,
    });
    try {
      await live.guard.check("tool.call", name);
      const tools = this.#tools;
      const handler = Object.hasOwn(tools, name) ? tools[name] : undefined;
      if (!handler) {
        throw new ArcpError(
          "PERMISSION_DENIED",
          `no tool named ${JSON.stringify(name.slice(0, 100))} is registered`,
        );
      }
      let result: unknown;
      try {
        result = checkResult(
          await handler(args.args ?? null, {
            jobId: live.record.job_id,
            traceId: live.record.trace_id,
            signal: live.abort.signal,
          }),
        );
      } catch (err) {
        throw err instanceof ArcpError ? err : new ArcpError(
          "INTERNAL_ERROR",
          `tool ${name} failed: ${(err as Error)?.message ?? err}`,
        );
      }
      await this.#port.event(live, "tool_result", { call_id: callId, result });
      return result;
    } catch (err) {
      throw this.#refuse(live, callId, err);
    }
  }

  /** Reports a refused or failed call in the job's events; returns the error to throw. */
  #refuse(live: LiveJob, callId: string, err: unknown): ArcpError {
    const e = toArcpError(err);
    this.#port.event(live, "tool_result", { call_id: callId, error: e.toPayload() });
    return e;
  }
}
