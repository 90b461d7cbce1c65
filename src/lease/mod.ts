/**
 * The lease model (ARCP.md §5.2–§5.7): glob matching and inclusion,
 * canonical paths and URLs, exact decimals, budget counters, delegation
 * subsetting, and the guard that checks every operation an agent asks for.
 * The wire shape of a lease lives in `protocol/lease.ts`; this layer gives
 * it meaning.
 *
 * @example
 * ```ts
 * import { matchesAny } from "./mod.ts";
 * console.log(matchesAny(["/srv/data/**"], "/srv/data/a.txt")); // true
 * ```
 *
 * @module
 */
export * from "./budget.ts";
export * from "./canonical.ts";
export * from "./decimal.ts";
export * from "./glob.ts";
export * from "./guard.ts";
export * from "./subset.ts";
