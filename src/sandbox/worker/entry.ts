/**
 * Builds a worker's entry module: a data URL that imports the bootstrap
 * first (so its lockdown runs before any agent code) and then the agent.
 * Both are in the worker's static graph, which loads without `read`
 * permission, so no lease needs to cover the agents folder.
 *
 * @module
 */
import type { EgressConfig } from "./egress_fetch.ts";

/**
 * URL of the worker bootstrap. Where the package was imported from a
 * registry this is remote, and sandbox hosts (which never download) need it
 * cached before they start.
 */
export const BOOTSTRAP_URL: string = new URL("./bootstrap.ts", import.meta.url).href;

function dataUrl(src: string): string {
  const bytes = new TextEncoder().encode(src);
  return `data:application/typescript;base64,${btoa(String.fromCharCode(...bytes))}`;
}

/**
 * The entry URL of a worker that serves the agent in `agentUrl`.
 *
 * @param agentUrl file URL of the agent module
 * @param egress the job's egress proxy, when it has one: plain `fetch` is
 *   routed through it before the agent module is evaluated, so even fetches
 *   at the agent's import time take that route
 * @returns a `data:` URL
 */
export function workerEntryUrl(agentUrl: string, egress?: EgressConfig): string {
  const bootstrap = JSON.stringify(BOOTSTRAP_URL);
  // Modules evaluate in import order: the bootstrap, then this one, then the agent.
  const route = egress
    ? `import ${
      JSON.stringify(
        dataUrl(
          `import { routeFetchThrough } from ${bootstrap};\n` +
            `routeFetchThrough(${JSON.stringify(egress)});\n`,
        ),
      )
    };\n`
    : "";
  return dataUrl(
    `import { serveAgent } from ${bootstrap};\n` + route +
      `import agent from ${JSON.stringify(agentUrl)};\n` +
      `serveAgent(agent);\n`,
  );
}
