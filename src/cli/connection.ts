/**
 * What `arcp submit`, `arcp jobs` and `arcp cancel` share: the connection
 * flags (`--url`, `--token`, each with an environment fallback) and how a
 * failure is told to the user.
 *
 * @module
 */
import type { ArcpClient } from "../client/client.ts";
import { ArcpClientError } from "../client/errors.ts";

/** The endpoint used when neither `--url` nor `ARCP_URL` says otherwise. */
export const DEFAULT_URL = "ws://127.0.0.1:7777/arcp";

/** `parseArgs` options every client command takes: the connection flags and `--help`. */
export const COMMON_OPTIONS = {
  url: { type: "string" },
  token: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Usage lines of the connection flags. */
export const CONNECTION_USAGE =
  `  --url URL                runtime endpoint (env ARCP_URL, default ${DEFAULT_URL})
  --token TOKEN            bearer token (env ARCP_TOKEN)`;

/** Where and as whom to connect. */
export interface ConnectionSettings {
  /** The runtime's WebSocket endpoint. */
  url: string;
  /** The bearer token. */
  token: string;
}

/**
 * Reads the connection settings: flags first, then the environment.
 *
 * @param values the parsed `--url` and `--token`
 * @param env environment lookup
 * @returns the settings
 * @throws {TypeError} when no token is given
 */
export function connectionSettings(
  values: { url?: string; token?: string },
  env: (name: string) => string | undefined,
): ConnectionSettings {
  const token = values.token ?? env("ARCP_TOKEN");
  if (!token) throw new TypeError("no token: pass --token TOKEN or set ARCP_TOKEN");
  return { url: values.url ?? env("ARCP_URL") ?? DEFAULT_URL, token };
}

/**
 * One line that says what went wrong: `CODE: message` for an ARCP error.
 *
 * @param err what was thrown
 * @returns the line
 */
export function describeError(err: unknown): string {
  if (err instanceof ArcpClientError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** How to start a runtime, for the line that says none answers. */
export const START_HINT =
  "start one with `npx -y deno@2.9.6 task serve` (or pass --url / ARCP_URL)";

/**
 * Whether an error says nothing listens at the URL (as opposed to a refused hello).
 *
 * @param err what connecting threw
 * @returns true when the socket could not be opened
 */
export function isUnreachable(err: unknown): boolean {
  return err instanceof ArcpClientError && err.code === "CONNECTION_CLOSED" &&
    /failed to connect|connect error|refused|code 1006/i.test(err.message);
}

/**
 * The line for a failure to connect: a runtime that is not running is named
 * by its URL, with how to start one.
 *
 * @param err what connecting threw
 * @param url where it tried
 * @returns one line
 */
export function describeConnectError(err: unknown, url: string): string {
  if (isUnreachable(err)) {
    return `no ARCP runtime answers at ${url} (CONNECTION_CLOSED); ${START_HINT}`;
  }
  return describeError(err);
}

/**
 * Runs one command's work on a connected client: a failure to connect or
 * an error of the work is told as `arcp COMMAND: …` with exit code 1, and
 * the client is closed either way.
 *
 * @param command the command's name, for the error line
 * @param url where it connects, for the error line
 * @param connect opens the session
 * @param use the work; resolves with the exit code
 * @returns the exit code
 */
export async function withClient(
  command: string,
  url: string,
  connect: () => Promise<ArcpClient>,
  use: (client: ArcpClient) => Promise<number>,
): Promise<number> {
  let client: ArcpClient;
  try {
    client = await connect();
  } catch (err) {
    console.error(`arcp ${command}: ${describeConnectError(err, url)}`);
    return 1;
  }
  try {
    return await use(client);
  } catch (err) {
    console.error(`arcp ${command}: ${describeError(err)}`);
    return 1;
  } finally {
    await client.close();
  }
}
