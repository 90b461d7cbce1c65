/**
 * Host-side tools agents call with `ctx.tool(name, args)`. A tool runs in
 * the runtime, not in the sandbox, after the lease allows it.
 *
 * @module
 */

/** What a tool receives besides its arguments. */
export interface ToolContext {
  /** The calling job. */
  jobId: string;
  /** The job's trace id, to propagate to whatever the tool calls. */
  traceId: string;
  /** Aborted when the job ends. */
  signal: AbortSignal;
}

/** A tool: arguments in, JSON result out. */
export type ToolHandler = (args: unknown, ctx: ToolContext) => unknown | Promise<unknown>;

/**
 * The built-in `search` tool: a deterministic stand-in for a paid search
 * API (this runtime reaches no network by itself). Returns a few result
 * stubs derived from the query, so agents and tests can exercise tool
 * calls, leases and budgets without an external service.
 *
 * @param args `{q?: string}`
 * @param ctx the call's context
 * @returns `{query, results, trace_id}`
 */
export function builtinSearch(args: unknown, ctx: ToolContext): unknown {
  const q = typeof (args as { q?: unknown })?.q === "string" ? (args as { q: string }).q : "";
  return {
    query: q,
    results: [1, 2, 3].map((i) => ({ title: `result ${i} for ${q || "(empty query)"}`, rank: i })),
    trace_id: ctx.traceId,
  };
}

/** The tools every runtime has unless overridden. */
export const BUILTIN_TOOLS: Readonly<Record<string, ToolHandler>> = { search: builtinSearch };
