/**
 * `arcp agents`: the agents a runtime offers, with every version, from its
 * `session.welcome` (ARCP has no separate agent-list message: the welcome's
 * `capabilities.agents` is the inventory, every version with
 * `agent_versions`).
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { ArcpClient } from "../client/client.ts";
import type { AgentInfo } from "../client/payloads.ts";
import { parseCommandArgs } from "./command_args.ts";
import {
  COMMON_OPTIONS,
  CONNECTION_USAGE,
  type ConnectionSettings,
  connectionSettings,
  withClient,
} from "./connection.ts";

/** Usage text of `arcp agents`. */
export const AGENTS_USAGE = `usage: arcp agents [options]
  --json                   one JSON object per agent: {name, versions, default}
${CONNECTION_USAGE}
Lists the agents the runtime offers: name, versions (oldest first) and the
version a bare name runs. Exits 0, 1 when the runtime cannot be reached.`;

/** A parsed `arcp agents` command line. */
export interface AgentsArgs {
  /** Where to connect. */
  connection: ConnectionSettings;
  /** JSON lines instead of a table. */
  json: boolean;
}

/**
 * Parses `arcp agents` arguments.
 *
 * @param args arguments after `agents`
 * @param env environment lookup
 * @returns the settings, or `help`
 * @throws {TypeError} naming the bad flag
 */
export function parseAgentsArgs(
  args: string[],
  env: (name: string) => string | undefined,
): AgentsArgs | "help" {
  const { values } = parseArgs({
    args,
    options: { ...COMMON_OPTIONS, json: { type: "boolean" } },
    strict: true,
  });
  if (values.help) return "help";
  return { connection: connectionSettings(values, env), json: values.json ?? false };
}

/**
 * The inventory as lines: `name  versions  (default v)`.
 *
 * @param agents the inventory
 * @returns one line per agent
 * @example
 * ```ts
 * import { agentLines } from "./agents.ts";
 * agentLines([{ name: "echo", versions: ["1.0.0", "2.0.0"], default: "2.0.0" }]);
 * // ["echo  1.0.0, 2.0.0  (default 2.0.0)"]
 * ```
 */
export function agentLines(agents: readonly AgentInfo[]): string[] {
  const width = Math.max(0, ...agents.map((a) => a.name.length));
  return agents.map((a) =>
    `${a.name.padEnd(width)}  ${a.versions.join(", ")}  (default ${a.default})`
  );
}

/**
 * `name@version` for every version, for messages that list what is there.
 *
 * @param agents the inventory
 * @returns e.g. `echo@1.0.0, echo@2.0.0, ticker@1.0.0`
 */
export function agentRefs(agents: readonly AgentInfo[]): string {
  return agents.flatMap((a) => a.versions.map((v) => `${a.name}@${v}`)).join(", ") || "none";
}

/**
 * Runs `arcp agents`.
 *
 * @param args arguments after `agents`
 * @returns the exit code
 */
export async function agents(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    "agents",
    AGENTS_USAGE,
    () => parseAgentsArgs(args, (n) => Deno.env.get(n)),
  );
  if (typeof parsed === "number") return parsed;
  const { connection, json } = parsed;
  return await withClient(
    "agents",
    connection.url,
    () =>
      ArcpClient.connect(connection.url, {
        token: connection.token,
        clientName: "arcp-cli",
        features: ["agent_versions"],
      }),
    (client) => {
      if (json) { for (const a of client.agents) console.log(JSON.stringify(a)); }
      else if (client.agents.length === 0) console.log("no agents");
      else for (const line of agentLines(client.agents)) console.log(line);
      return Promise.resolve(0);
    },
  );
}
