/**
 * `arcp send JOB_ID --input JSON`: sends input to a running job (vendor
 * feature `x-arcp-deno.input`). Only the session that submitted the job may,
 * so, as `arcp cancel` does, this resumes the session `arcp submit` stored;
 * otherwise it asks from a new session and reports the runtime's refusal.
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { ArcpClient } from "../client/client.ts";
import { borrowSession, handBack } from "./borrowed_session.ts";
import { parseCommandArgs } from "./command_args.ts";
import {
  COMMON_OPTIONS,
  CONNECTION_USAGE,
  type ConnectionSettings,
  connectionSettings,
  withClient,
} from "./connection.ts";
import { sessionsPath, SessionStore, type StoredSession } from "./session_store.ts";

/** Usage text of `arcp send`. */
export const SEND_USAGE = `usage: arcp send JOB_ID [options]
  --input JSON             the input (any JSON value; a plain word needs quotes: '"hi"')
  --end                    no input follows (with or without --input)
${CONNECTION_USAGE}
Sends input to a running job; its agent reads it with ctx.input(). Only the
session that submitted the job may: when arcp submit stored that session
(~/.arcp/cli-sessions.json, env ARCP_CLI_SESSIONS) it is borrowed and handed
back, and an arcp submit still following the job waits and goes on (arcp
submit --interactive chats with a job from one terminal). Prints the input's sequence
number. Exits 0 when the runtime recorded the input, 1 when it refused
(a full queue is retryable: send again), 2 on bad usage.`;

/** A parsed `arcp send` command line. */
export interface SendArgs {
  /** Where to connect. */
  connection: ConnectionSettings;
  /** The job. */
  jobId: string;
  /** The input; undefined only with `end`. */
  content: unknown;
  /** No input follows. */
  end: boolean;
}

/**
 * Parses `arcp send` arguments.
 *
 * @param args arguments after `send`
 * @param env environment lookup
 * @returns the settings, or `help`
 * @throws {TypeError} naming the bad flag
 */
export function parseSendArgs(
  args: string[],
  env: (name: string) => string | undefined,
): SendArgs | "help" {
  const { values, positionals } = parseArgs({
    args,
    options: { ...COMMON_OPTIONS, input: { type: "string" }, end: { type: "boolean" } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return "help";
  if (positionals.length !== 1) throw new TypeError("expected exactly one JOB_ID");
  if (values.input === undefined && !values.end) {
    throw new TypeError("--input: required unless --end is given");
  }
  let content: unknown;
  if (values.input !== undefined) {
    try {
      content = JSON.parse(values.input);
    } catch (err) {
      throw new TypeError(`--input: not valid JSON (${(err as Error).message})`);
    }
  }
  return {
    connection: connectionSettings(values, env),
    jobId: positionals[0],
    content,
    end: values.end ?? false,
  };
}

/**
 * Runs `arcp send`.
 *
 * @param args arguments after `send`
 * @returns the exit code
 */
export async function send(args: string[]): Promise<number> {
  const parsed = parseCommandArgs("send", SEND_USAGE, () => parseSendArgs(args, Deno.env.get));
  if (typeof parsed === "number") return parsed;
  const { connection, jobId, content, end } = parsed;
  const store = new SessionStore(sessionsPath((n) => Deno.env.get(n)));
  let stored: StoredSession | undefined;
  return await withClient("send", connection.url, async () => {
    stored = await store.find(connection.url, jobId);
    return (stored && await borrowSession("send", connection, stored, store)) ??
      await ArcpClient.connect(connection.url, { token: connection.token, clientName: "arcp-cli" });
  }, async (client) => {
    try {
      const receipt = await client.sendInput(jobId, content, { end });
      console.log(`input ${receipt.input_seq} sent to ${jobId}${end ? " (input ended)" : ""}`);
      return 0;
    } finally {
      if (stored && client.resumed) await handBack(store, stored, client);
    }
  });
}
