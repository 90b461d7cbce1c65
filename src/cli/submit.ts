/**
 * `arcp submit AGENT`: submits a job, prints one line per event as it
 * arrives (a live progress bar for `progress` events on a terminal), then the
 * result as JSON. Ctrl-C cancels the job. The session's id and resume token
 * are stored (see `session_store.ts`) until the job ends, so `arcp cancel`
 * can come back with the cancel authority.
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { ArcpClient } from "../client/client.ts";
import { JobFailedError } from "../client/errors.ts";
import type { JobHandle } from "../client/job_handle.ts";
import type { SubmitRequest } from "../client/requests.ts";
import { EVENT_BODIES } from "../protocol/events.ts";
import { nowIso } from "../protocol/time.ts";
import {
  COMMON_OPTIONS,
  CONNECTION_USAGE,
  type ConnectionSettings,
  connectionSettings,
  describeError,
} from "./connection.ts";
import { eventLine } from "./event_line.ts";
import { LiveLine, progressBar } from "./progress_bar.ts";
import { sessionsPath, SessionStore, type StoredSession } from "./session_store.ts";

/** Usage text of `arcp submit`. */
export const SUBMIT_USAGE = `usage: arcp submit AGENT [options]
  --input JSON             the agent's input (default null)
  --lease NS=PATTERN       ask for a lease pattern (repeatable), e.g. fs.read=/data/**
  --expires-at TIME        the lease expires then (RFC 3339 UTC, e.g. 2030-01-01T00:00:00Z)
  --max-runtime-sec N      the job times out after N seconds
  --idempotency-key KEY    a retried submit with the same key returns the same job
${CONNECTION_USAGE}
Prints the job id, one line per event, then the result as JSON. Exits 0 on
success, 1 when the job fails or is refused, 2 on bad usage. Ctrl-C cancels
the job. The session's resume token is kept in ~/.arcp/cli-sessions.json
(env ARCP_CLI_SESSIONS) until the job ends, for arcp cancel.`;

/** A parsed `arcp submit` command line. */
export interface SubmitArgs {
  /** Where to connect. */
  connection: ConnectionSettings;
  /** What to submit. */
  request: SubmitRequest;
}

/**
 * Parses `arcp submit` arguments.
 *
 * @param args arguments after `submit`
 * @param env environment lookup
 * @returns the settings and the request, or `help`
 * @throws {TypeError} naming the bad flag
 */
export function parseSubmitArgs(
  args: string[],
  env: (name: string) => string | undefined,
): SubmitArgs | "help" {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      input: { type: "string" },
      lease: { type: "string", multiple: true },
      "expires-at": { type: "string" },
      "max-runtime-sec": { type: "string" },
      "idempotency-key": { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return "help";
  if (positionals.length !== 1) throw new TypeError("expected exactly one AGENT");
  const request: SubmitRequest = { agent: positionals[0], input: null };
  if (values.input !== undefined) {
    try {
      request.input = JSON.parse(values.input);
    } catch (err) {
      throw new TypeError(`--input: not valid JSON (${(err as Error).message})`);
    }
  }
  for (const item of values.lease ?? []) {
    const eq = item.indexOf("=");
    if (eq <= 0 || eq === item.length - 1) {
      throw new TypeError(`--lease: expected NS=PATTERN, got ${item}`);
    }
    request.leaseRequest ??= {};
    (request.leaseRequest[item.slice(0, eq)] ??= []).push(item.slice(eq + 1));
  }
  if (values["expires-at"] !== undefined) {
    request.leaseConstraints = { expiresAt: values["expires-at"] };
  }
  const maxRuntime = values["max-runtime-sec"];
  if (maxRuntime !== undefined) {
    const n = Number(maxRuntime);
    if (!Number.isInteger(n) || n < 1) {
      throw new TypeError(`--max-runtime-sec: expected a positive integer, got ${maxRuntime}`);
    }
    request.maxRuntimeSec = n;
  }
  if (values["idempotency-key"] !== undefined) request.idempotencyKey = values["idempotency-key"];
  return { connection: connectionSettings(values, (n) => env(n)), request };
}

/**
 * Runs `arcp submit`.
 *
 * @param args arguments after `submit`
 * @returns the exit code
 */
export async function submit(args: string[]): Promise<number> {
  let parsed: SubmitArgs | "help";
  try {
    parsed = parseSubmitArgs(args, (n) => Deno.env.get(n));
  } catch (err) {
    console.error(`arcp submit: ${(err as Error).message}\n${SUBMIT_USAGE}`);
    return 2;
  }
  if (parsed === "help") {
    console.log(SUBMIT_USAGE);
    return 0;
  }
  const { connection, request } = parsed;
  let client: ArcpClient;
  try {
    client = await ArcpClient.connect(connection.url, {
      token: connection.token,
      clientName: "arcp-cli",
    });
  } catch (err) {
    console.error(`arcp submit: ${describeError(err)}`);
    return 1;
  }
  try {
    return await follow(client, client.submit(request), connection.url);
  } finally {
    await client.close();
  }
}

async function follow(client: ArcpClient, job: JobHandle, url: string): Promise<number> {
  let jobId: string;
  try {
    const accepted = await job.accepted;
    jobId = accepted.job_id;
    print(`job ${jobId} accepted (${accepted.agent})`);
  } catch (err) {
    console.error(`arcp submit: refused: ${describeError(err)}${details(err)}`);
    return 1;
  }
  const store = new SessionStore(sessionsPath((n) => Deno.env.get(n)));
  const stored: StoredSession = {
    url,
    session_id: client.sessionId,
    resume_token: client.resumeToken,
    last_event_seq: client.lastEventSeq,
    jobs: [jobId],
    saved_at: nowIso(),
  };
  await keep(() => store.save(stored));

  const tty = Deno.stdout.isTerminal();
  const out = new LiveLine(writeStdout, terminalColumns);
  const stopInterrupt = onInterrupt(() => {
    console.error(`arcp submit: cancelling ${jobId} (Ctrl-C again to stop waiting)`);
    job.cancel("interrupted from the arcp CLI").catch((err) =>
      console.error(`arcp submit: cancel refused: ${describeError(err)}`)
    );
  });
  try {
    for await (const event of job.events()) {
      const progress = tty && event.payload.kind === "progress"
        ? EVENT_BODIES.progress.safeParse(event.payload.body).data
        : undefined;
      if (progress) out.show(progressBar(progress));
      else out.print(eventLine(event.payload));
    }
    out.finish();
    const result = await job.result;
    const value = result.result_id === undefined ? result.result ?? null : result;
    print(JSON.stringify(value, null, tty ? 2 : undefined));
    await keep(() => store.forgetJob(stored, jobId));
    return 0;
  } catch (err) {
    out.finish();
    if (err instanceof JobFailedError) {
      console.error(
        `arcp submit: job ${jobId} ${err.finalStatus}: ${describeError(err)}${details(err)}`,
      );
      await keep(() => store.forgetJob(stored, jobId));
      return 1;
    }
    // The stored session stays as it was: the job may run on, and another
    // process (arcp cancel) may already have resumed the session and rotated its token.
    const line = `arcp submit: ${describeError(err)}`;
    console.error(`${line}\njob ${jobId} may still be running; arcp cancel ${jobId} stops it`);
    return 1;
  } finally {
    stopInterrupt();
  }
}

/** Cancels on the first Ctrl-C; a second one gives up waiting. */
function onInterrupt(cancel: () => void): () => void {
  let interrupts = 0;
  const listener = () => {
    if (++interrupts > 1) Deno.exit(130);
    cancel();
  };
  Deno.addSignalListener("SIGINT", listener);
  return () => Deno.removeSignalListener("SIGINT", listener);
}

/** Storing the session only helps a later cancel; failing to is worth a warning, not an exit. */
async function keep(write: () => Promise<void>): Promise<void> {
  try {
    await write();
  } catch (err) {
    console.error(
      `arcp submit: could not store the session for arcp cancel: ${describeError(err)}`,
    );
  }
}

function details(err: unknown): string {
  const d = (err as { details?: unknown }).details;
  return d === undefined ? "" : ` ${JSON.stringify(d)}`;
}

function print(line: string): void {
  writeStdout(`${line}\n`);
}

function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 0;
  }
}

const encoder = new TextEncoder();

function writeStdout(text: string): void {
  const bytes = encoder.encode(text);
  for (let n = 0; n < bytes.length;) n += Deno.stdout.writeSync(bytes.subarray(n));
}
