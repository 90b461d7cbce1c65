/**
 * The environment of the deno processes the runtime starts for agent code
 * (sandbox hosts, agent describers): what Deno needs to find its cache,
 * nothing else, so tokens and keys in the runtime's environment stay out.
 *
 * @module
 */

/** Environment variables a child keeps. */
const KEEP_ENV = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR", "NO_COLOR"];

/**
 * The environment for a deno child process that runs agent code.
 *
 * @returns the variables
 */
export function childEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of KEEP_ENV) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  return env;
}
