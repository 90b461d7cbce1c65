/**
 * What a describer process runs: its main module is a `data:` URL that
 * imports this module, then the agent module, then calls
 * {@linkcode reportAgent}. Both are in the main module's static graph, so
 * they load without read permission; the process may read only the agents
 * folder, has no other permission and a heap cap, and the runtime kills it
 * when the agent's import hangs. Whatever the agent does at import happens
 * here, never in the runtime.
 *
 * @module
 */

/** An agent module's default export, as far as describing goes. */
export interface Describable {
  /** The agent's name. */
  name?: unknown;
  /** Its version. */
  version?: unknown;
  /** One line on what it does. */
  description?: unknown;
  /** Its `reuse` option. */
  reuse?: unknown;
  /** Its `concurrency` option. */
  concurrency?: unknown;
}

/**
 * Prints the agent's description as the describer's report line and exits
 * (the agent may have left timers or workers running).
 *
 * @param agent the agent module's default export
 */
export function reportAgent(agent: Describable | undefined): void {
  const described = {
    name: String(agent?.name),
    version: String(agent?.version),
    ...(typeof agent?.description === "string" ? { description: agent.description } : {}),
    ...(agent?.reuse !== undefined ? { reuse: agent.reuse } : {}),
    ...(agent?.concurrency !== undefined ? { concurrency: agent.concurrency } : {}),
  };
  // On a line of its own: the agent's console output shares stdout.
  console.log(`\n${JSON.stringify({ described })}`);
  Deno.exit(0);
}

/**
 * The main module of a describer process for one agent module.
 *
 * @param agentUrl file URL of the agent module
 * @returns a `data:` URL
 */
export function describerMainUrl(agentUrl: string): string {
  const src = `import { reportAgent } from ${JSON.stringify(import.meta.url)};\n` +
    `import agent from ${JSON.stringify(agentUrl)};\n` +
    `reportAgent(agent);\n`;
  const bytes = new TextEncoder().encode(src);
  return `data:application/typescript;base64,${btoa(String.fromCharCode(...bytes))}`;
}
