/**
 * How deep a JSON value may nest. Every layer a body crosses (zod, the
 * canonical hash, `structuredClone`, the worker channel, clients' own
 * parsers) walks it recursively, so a body thousands of levels deep costs
 * each of them stack and time out of all proportion to its size. Such a
 * body is refused where it enters: a client's input at submit, an agent's
 * events and result in the supervisor.
 *
 * @module
 */

/** The deepest nesting of objects and arrays a body may have (`{}` is depth 1). */
export const MAX_NESTING_DEPTH = 64;

/**
 * Whether a JSON-like value nests objects or arrays deeper than `max`. It
 * walks without recursion and stops at the first level too deep, so a
 * hostile value cannot make the check itself costly in stack.
 *
 * @example
 * ```ts
 * import { nestsDeeperThan } from "./nesting.ts";
 * nestsDeeperThan({ a: [1] }, 2); // false
 * nestsDeeperThan({ a: [[1]] }, 2); // true
 * ```
 *
 * @param value the value
 * @param max the deepest nesting allowed
 * @returns true when some object or array sits below `max` levels
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  if (max >= 1 && flat(value)) return false;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth >= max) return true;
    for (const child of Object.values(v)) {
      if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * Whether a value is a primitive or an object none of whose enumerable
 * values is an object (depth at most 1): most event bodies are, and this
 * answers for them without the walk's stack and per-object arrays. An
 * inherited enumerable object value only sends the value to the walk.
 */
function flat(value: unknown): boolean {
  if (value === null || typeof value !== "object") return true;
  if (Array.isArray(value)) return false;
  const o = value as Record<string, unknown>;
  for (const k in o) {
    const child = o[k];
    if (child !== null && typeof child === "object") return false;
  }
  return true;
}
