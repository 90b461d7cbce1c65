/**
 * Builds a worker's entry module: a data URL that imports the bootstrap
 * first (so its lockdown runs before any agent code) and then the agent.
 * Both are in the worker's static graph, which loads without `read`
 * permission, so no lease needs to cover the agents folder.
 *
 * @module
 */

/**
 * URL of the worker bootstrap. Where the package was imported from a
 * registry this is remote, and sandbox hosts (which never download) need it
 * cached before they start.
 */
export const BOOTSTRAP_URL: string = new URL("./bootstrap.ts", import.meta.url).href;

/**
 * The entry URL of a worker that serves the agent in `agentUrl`.
 *
 * @param agentUrl file URL of the agent module
 * @returns a `data:` URL
 */
export function workerEntryUrl(agentUrl: string): string {
  const src = `import { serveAgent } from ${JSON.stringify(BOOTSTRAP_URL)};\n` +
    `import agent from ${JSON.stringify(agentUrl)};\n` +
    `serveAgent(agent);\n`;
  const bytes = new TextEncoder().encode(src);
  return `data:application/typescript;base64,${btoa(String.fromCharCode(...bytes))}`;
}
