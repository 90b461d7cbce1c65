/**
 * Running agents: the worker bootstrap, lease → Deno
 * permissions, the host↔agent protocol and the agent inventory. The jobs
 * layer sees only the {@linkcode Sandbox} interface; where agents run (a
 * worker in this process, or in a sandbox process per job) is
 * decided here.
 *
 * @example
 * ```ts
 * import { permissionsForLease } from "./mod.ts";
 * console.log(permissionsForLease({ "fs.read": ["/srv/data/**"] }).read); // ["/srv/data"]
 * ```
 *
 * @module
 */
export * from "./worker/limits.ts";
export * from "./permissions.ts";
export * from "./registry.ts";
export * from "./channel.ts";
export * from "./host_launcher.ts";
export * from "./local_launcher.ts";
export * from "./sandbox.ts";
export * from "./supervisor.ts";
