/**
 * How an OpenAI-compatible upstream (LiteLLM, OpenAI, vendors) says it
 * refuses for budget. Shared by `ctx.model()` in the worker and the egress
 * proxy in the sandbox process, which both translate it to
 * `BUDGET_EXHAUSTED`. Imports nothing.
 *
 * @module
 */

/** How a budget refusal reads in an OpenAI-compatible error (LiteLLM, OpenAI, vendors). */
const BUDGET_REASON =
  /budget_exceeded|insufficient_quota|budget has been exceeded|exceeded (your|the)? ?(current )?(budget|quota)|max(imum)?[ _]budget/i;

/** Statuses that may carry a budget refusal. */
export const BUDGET_STATUSES: ReadonlySet<number> = new Set([400, 402, 403, 429]);

/**
 * Whether an upstream answer is a budget refusal: HTTP 402, or a 400/403/429
 * whose error says budget or quota.
 *
 * @param status the HTTP status
 * @param body the error body's text
 * @returns true for a budget refusal
 * @example
 * ```ts
 * isBudgetRefusal(429, '{"error":{"type":"budget_exceeded"}}'); // true
 * ```
 */
export function isBudgetRefusal(status: number, body: string): boolean {
  if (status === 402) return true;
  return (status === 400 || status === 403 || status === 429) && BUDGET_REASON.test(body);
}
