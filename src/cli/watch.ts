/**
 * `arcp watch JOB_ID`: follows a job from any session of its principal: its
 * history first, then live events (a progress bar on a terminal), and ends
 * with its result. The exit code is the outcome's.
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { ArcpClient } from "../client/client.ts";
import { JobFailedError } from "../client/errors.ts";
import { parseCommandArgs } from "./command_args.ts";
import {
  COMMON_OPTIONS,
  CONNECTION_USAGE,
  type ConnectionSettings,
  connectionSettings,
  describeError,
  withClient,
} from "./connection.ts";
import { details, EventPrinter, print, writeResult } from "./job_output.ts";

/** Usage text of `arcp watch`. */
export const WATCH_USAGE = `usage: arcp watch JOB_ID [options]
  --out FILE               write the result to FILE instead of stdout
${CONNECTION_USAGE}
Follows a job of your principal (submitted from anywhere): replays its
events so far, shows new ones as they come (a progress bar on a terminal),
then prints the result as JSON. Watching never cancels: Ctrl-C stops
watching. Exits 0 when the job succeeded, 1 when it failed, was cancelled
or timed out, or cannot be watched, 2 on bad usage.`;

/** A parsed `arcp watch` command line. */
export interface WatchArgs {
  /** Where to connect. */
  connection: ConnectionSettings;
  /** The job. */
  jobId: string;
  /** Where to write the result (`--out`); stdout when absent. */
  out?: string;
}

/**
 * Parses `arcp watch` arguments.
 *
 * @param args arguments after `watch`
 * @param env environment lookup
 * @returns the settings, or `help`
 * @throws {TypeError} naming the bad flag
 */
export function parseWatchArgs(
  args: string[],
  env: (name: string) => string | undefined,
): WatchArgs | "help" {
  const { values, positionals } = parseArgs({
    args,
    options: { ...COMMON_OPTIONS, out: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return "help";
  if (positionals.length !== 1) throw new TypeError("expected exactly one JOB_ID");
  return { connection: connectionSettings(values, env), jobId: positionals[0], out: values.out };
}

/**
 * Runs `arcp watch`.
 *
 * @param args arguments after `watch`
 * @returns the exit code
 */
export async function watch(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    "watch",
    WATCH_USAGE,
    () => parseWatchArgs(args, (n) => Deno.env.get(n)),
  );
  if (typeof parsed === "number") return parsed;
  const { connection, jobId, out } = parsed;
  return await withClient(
    "watch",
    connection.url,
    () =>
      ArcpClient.connect(connection.url, {
        token: connection.token,
        clientName: "arcp-cli",
      }),
    async (client) => {
      const subscription = await client.subscribe(jobId, { history: true });
      print(`watching ${jobId} (${subscription.info.agent}, ${subscription.info.current_status})`);
      const streamed = subscription.resultBytes();
      streamed.catch(() => {});
      const printer = new EventPrinter();
      try {
        await printer.print(subscription);
        const result = await subscription.result;
        return await writeResult("watch", jobId, result, streamed, out, printer.tty);
      } catch (err) {
        if (!(err instanceof JobFailedError)) throw err;
        console.error(
          `arcp watch: job ${jobId} ${err.finalStatus}: ${describeError(err)}${details(err)}`,
        );
        return 1;
      }
    },
  );
}
