/**
 * Running agents: the agent API, the worker bootstrap, lease → Deno
 * permissions, the host↔agent protocol and the agent inventory. The jobs
 * layer sees only the {@linkcode Sandbox} interface, so where agents run
 * (workers in this process today) can change without touching it.
 *
 * @example
 * ```ts
 * import { permissionsForLease } from "./mod.ts";
 * console.log(permissionsForLease({ "fs.read": ["/srv/data/**"] }).read); // ["/srv/data"]
 * ```
 *
 * @module
 */
export * from "./agent.ts";
export * from "./limits.ts";
export * from "./permissions.ts";
export * from "./registry.ts";
export * from "./worker_sandbox.ts";
