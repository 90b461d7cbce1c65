/**
 * `arcp cancel JOB_ID`: cancels a job. Cancel authority belongs to the
 * session that submitted the job, so when `arcp submit` stored that session
 * this command resumes it; otherwise, or when the runtime refuses the resume,
 * it asks from a new session and reports the runtime's answer.
 *
 * @module
 */
import { parseCommandArgs } from "./command_args.ts";
import { parseArgs } from "parse-args";
import { ArcpClient } from "../client/client.ts";
import { ArcpClientError } from "../client/errors.ts";
import { TERMINAL_STATUSES } from "../protocol/messages.ts";
import { borrowSession, handBack } from "./borrowed_session.ts";
import {
  COMMON_OPTIONS,
  CONNECTION_USAGE,
  type ConnectionSettings,
  connectionSettings,
  withClient,
} from "./connection.ts";
import { sessionsPath, SessionStore, type StoredSession } from "./session_store.ts";

/** Usage text of `arcp cancel`. */
export const CANCEL_USAGE = `usage: arcp cancel JOB_ID [options]
  --reason TEXT            why, for the runtime's records
${CONNECTION_USAGE}
Only the session that submitted a job may cancel it. When arcp submit stored
that session (~/.arcp/cli-sessions.json, env ARCP_CLI_SESSIONS) it is resumed;
otherwise the cancel is sent from a new session and the runtime's answer is
reported. Exits 0 when the job is cancelling or had already ended, 1 when the
runtime refuses, 2 on bad usage.`;

/** A parsed `arcp cancel` command line. */
export interface CancelArgs {
  /** Where to connect. */
  connection: ConnectionSettings;
  /** The job. */
  jobId: string;
  /** Why, if given. */
  reason?: string;
}

/**
 * Parses `arcp cancel` arguments.
 *
 * @param args arguments after `cancel`
 * @param env environment lookup
 * @returns the settings, or `help`
 * @throws {TypeError} naming the bad flag
 */
export function parseCancelArgs(
  args: string[],
  env: (name: string) => string | undefined,
): CancelArgs | "help" {
  const { values, positionals } = parseArgs({
    args,
    options: { ...COMMON_OPTIONS, reason: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return "help";
  if (positionals.length !== 1) throw new TypeError("expected exactly one JOB_ID");
  return {
    connection: connectionSettings(values, env),
    jobId: positionals[0],
    reason: values.reason,
  };
}

/**
 * Runs `arcp cancel`.
 *
 * @param args arguments after `cancel`
 * @returns the exit code
 */
export async function cancel(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    "cancel",
    CANCEL_USAGE,
    () => parseCancelArgs(args, (n) => Deno.env.get(n)),
  );
  if (typeof parsed === "number") return parsed;
  const { connection, jobId, reason } = parsed;
  const store = new SessionStore(sessionsPath((n) => Deno.env.get(n)));
  let stored: StoredSession | undefined;
  return await withClient("cancel", connection.url, async () => {
    stored = await store.find(connection.url, jobId);
    return (stored && await borrowSession("cancel", connection, stored, store)) ??
      await ArcpClient.connect(connection.url, { token: connection.token, clientName: "arcp-cli" });
  }, async (client) => {
    let outcome: "cancelling" | "ended";
    try {
      outcome = await client.cancel(jobId, reason);
    } catch (err) {
      // Only the submitting session may cancel; a job that is over needs no cancel from anyone.
      if (!(err instanceof ArcpClientError) || err.code !== "PERMISSION_DENIED") throw err;
      if (!await hasEnded(client, jobId)) throw err;
      outcome = "ended";
    } finally {
      if (stored && client.resumed) {
        // Hand the session back (arcp submit may be waiting to resume it to hear the outcome).
        await handBack(store, stored, client);
      }
    }
    console.log(outcome === "cancelling" ? `cancelling ${jobId}` : `${jobId} had already ended`);
    if (stored && client.resumed && outcome === "ended") await store.forgetJob(stored, jobId);
    return 0;
  });
}

/**
 * Whether a job this principal may observe has ended: its history, replayed
 * to a subscription, ends with its terminal message.
 *
 * @param client a session of the job's principal
 * @param jobId the job
 * @returns true when it has ended; false when it runs or cannot be observed
 */
async function hasEnded(client: ArcpClient, jobId: string): Promise<boolean> {
  let subscription;
  try {
    subscription = await client.subscribe(jobId, { history: true });
  } catch {
    return false;
  }
  const status = subscription.info.current_status;
  subscription.unsubscribe();
  return TERMINAL_STATUSES.has(status);
}
