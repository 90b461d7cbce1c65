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
import { endpointGlobs } from "../sandbox/credential_egress.ts";
import { parseCanonicalUrl } from "../lease/canonical_url.ts";
import { matchesAny } from "../lease/glob.ts";
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
   * Whether a credential id is one of a job's live credentials.
   *
   * @param live the job
   * @param credentialId the id
   * @returns true when it is
   */
  holds(live: LiveJob, credentialId: string): boolean;
  /**
   * The endpoints of a job's live credentials.
   *
   * @param live the job
   * @returns them (none when it has no credential)
   */
  endpoints(live: LiveJob): string[];
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
   * @param op `delegate`, `authorize`, `upstream_budget`, `input` or `tool`
   * @param args the request's arguments
   * @returns what the agent gets back (for `authorize`, the canonical target)
   * @throws {ArcpError} the refusal or failure, already reported in the job's events
   */
  async call(live: LiveJob, op: string, args: Record<string, unknown>): Promise<unknown> {
    if (op === "delegate") return await this.#port.delegate(live, args);
    if (op === "authorize") return await this.#authorize(live, args);
    if (op === "upstream_budget") return await this.#upstreamBudget(live, args);
    if (op === "input") return await this.#port.input(live);
    return await this.#tool(live, args);
  }

  async #authorize(live: LiveJob, args: Record<string, unknown>): Promise<string> {
    const ns = String(args.ns);
    const target = String(args.target);
    try {
      // A provisioned credential's endpoint is the job's to reach, as the egress proxy lets it.
      const endpoint = ns === "net.fetch" ? this.#credentialEndpoint(live, target) : undefined;
      if (endpoint) {
        live.guard.checkLive();
        return endpoint;
      }
      return await live.guard.check(ns, target);
    } catch (err) {
      throw this.#refuse(live, `call_${newUlid()}`, err);
    }
  }

  /** The canonical URL when it lies under one of the job's credential endpoints. */
  #credentialEndpoint(live: LiveJob, target: string): string | undefined {
    const endpoints = this.#port.endpoints(live);
    if (endpoints.length === 0) return undefined;
    const c = parseCanonicalUrl(target);
    if ("refused" in c) return undefined;
    return matchesAny(endpoints.flatMap(endpointGlobs), c.url) ? c.url : undefined;
  }

  /**
   * An upstream refused one of the job's credentials for budget: the job's
   * counters are emptied (the runtime reports `cost.budget.remaining` 0) and
   * its failure will read `BUDGET_EXHAUSTED`. Only the job's own
   * credentials count, so an agent cannot blame a stranger's.
   */
  async #upstreamBudget(live: LiveJob, args: Record<string, unknown>): Promise<null> {
    const id = String(args.credential_id);
    if (!this.#port.holds(live, id)) {
      throw new ArcpError("PERMISSION_DENIED", `credential ${id.slice(0, 64)} is not this job's`);
    }
    live.upstreamBudget = `credential ${id}: ${String(args.message ?? "").slice(0, 300)}`;
    for (const r of live.budget?.exhaust() ?? []) {
      live.record.budget_remaining = live.budget!.toStored();
      await this.#port.event(live, "metric", {
        name: "cost.budget.remaining",
        value: r.value,
        unit: r.currency,
      });
    }
    return null;
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
