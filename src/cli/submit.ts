/**
 * `arcp submit AGENT`: submits a job, prints one line per event as it
 * arrives (a live progress bar for `progress` events on a terminal), then the
 * result as JSON, or a streamed result's reassembled bytes as they are
 * (`--out FILE` writes the result to a file instead). Ctrl-C cancels the job.
 * The session's id and resume token are stored (see `session_store.ts`)
 * until the job ends, so `arcp cancel` can come back with the cancel
 * authority.
 *
 * @module
 */
import { parseCommandArgs } from "./command_args.ts";
import { parseArgs } from "parse-args";
import { ArcpClient } from "../client/client.ts";
import { ArcpClientError, JobFailedError } from "../client/errors.ts";
import type { JobHandle } from "../client/job_handle.ts";
import type { JobResultPayload } from "../client/payloads.ts";
import type { SubmitRequest } from "../client/requests.ts";
import { EVENT_BODIES } from "../protocol/events.ts";
import { nowIso } from "../protocol/time.ts";
import {
  COMMON_OPTIONS,
  CONNECTION_USAGE,
  type ConnectionSettings,
  connectionSettings,
  describeError,
  withClient,
} from "./connection.ts";
import { eventLine } from "./event_line.ts";
import { forwardLines, stdinLines } from "./interactive.ts";
import { LiveLine, progressBar } from "./progress_bar.ts";
import { sessionsPath, SessionStore, type StoredSession } from "./session_store.ts";

/** Usage text of `arcp submit`. */
export const SUBMIT_USAGE = `usage: arcp submit AGENT [options]
  --input JSON             the agent's input (default null)
  --lease NS=PATTERN       ask for a lease pattern (repeatable), e.g. fs.read=/data/**
  --expires-at TIME        the lease expires then (RFC 3339 UTC, e.g. 2030-01-01T00:00:00Z)
  --max-runtime-sec N      the job times out after N seconds
  --idempotency-key KEY    a retried submit with the same key returns the same job
  --out FILE               write the result to FILE instead of stdout
  --interactive            send each stdin line to the job as input; end of stdin ends the input
${CONNECTION_USAGE}
Prints the job id, one line per event, then the result as JSON. A streamed
result (result_chunk events) is reassembled and written as raw bytes, with
nothing added, after the event lines; its chunks get no event lines (on a
terminal, a live line counts them). With --out, the result (raw bytes, or
JSON for an inline result) goes to FILE and stdout ends with a line saying
so. Exits 0 on success, 1 when the job fails or is refused or its streamed
result does not add up, 2 on bad usage. Ctrl-C cancels the job. The
session's resume token is kept in ~/.arcp/cli-sessions.json (env
ARCP_CLI_SESSIONS) until the job ends, for arcp cancel.`;

/** A parsed `arcp submit` command line. */
export interface SubmitArgs {
  /** Where to connect. */
  connection: ConnectionSettings;
  /** What to submit. */
  request: SubmitRequest;
  /** Where to write the result (`--out`); stdout when absent. */
  out?: string;
  /** Forward stdin lines as input (`--interactive`). */
  interactive?: boolean;
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
      out: { type: "string" },
      interactive: { type: "boolean" },
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
  const parsed: SubmitArgs = { connection: connectionSettings(values, (n) => env(n)), request };
  if (values.out !== undefined) {
    if (values.out === "") throw new TypeError("--out: expected a file name");
    parsed.out = values.out;
  }
  if (values.interactive) parsed.interactive = true;
  return parsed;
}

/**
 * Runs `arcp submit`.
 *
 * @param args arguments after `submit`
 * @returns the exit code
 */
export async function submit(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    "submit",
    SUBMIT_USAGE,
    () => parseSubmitArgs(args, (n) => Deno.env.get(n)),
  );
  if (typeof parsed === "number") return parsed;
  const { connection, request, out, interactive } = parsed;
  return await withClient(
    "submit",
    () => ArcpClient.connect(connection.url, { token: connection.token, clientName: "arcp-cli" }),
    (client) => follow(client, client.submit(request), connection.url, out, interactive),
  );
}

async function follow(
  client: ArcpClient,
  job: JobHandle,
  url: string,
  outPath: string | undefined,
  interactive = false,
): Promise<number> {
  // Asked for before any event is read, so a streamed result's chunks are kept.
  const streamed = job.resultBytes();
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
  if (interactive) void forwardLines(job, stdinLines(), job.result);
  try {
    const chunks = { count: 0, bytes: 0 };
    for await (const event of job.events()) {
      if (event.payload.kind === "result_chunk") {
        // The bytes come at the end; a terminal gets a count as they arrive.
        if (tty) {
          chunks.count++;
          chunks.bytes += chunkSize(event.payload.body);
          out.show(`result_chunk ${chunks.count} (${chunks.bytes} bytes)`);
        }
        continue;
      }
      const progress = tty && event.payload.kind === "progress"
        ? EVENT_BODIES.progress.safeParse(event.payload.body).data
        : undefined;
      if (progress) out.show(progressBar(progress));
      else out.print(eventLine(event.payload));
    }
    out.finish();
    const result = await job.result;
    await keep(() => store.forgetJob(stored, jobId));
    return await writeResult(jobId, result, streamed, outPath, tty);
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

/**
 * Writes a successful job's result: a streamed one as its reassembled bytes,
 * an inline one as JSON; to `outPath` when given, else to stdout.
 */
async function writeResult(
  jobId: string,
  result: JobResultPayload,
  streamed: Promise<Uint8Array>,
  outPath: string | undefined,
  tty: boolean,
): Promise<number> {
  let bytes: Uint8Array;
  if (result.result_id === undefined) {
    const json = JSON.stringify(result.result ?? null, null, tty && !outPath ? 2 : undefined);
    bytes = encoder.encode(`${json}\n`);
  } else {
    try {
      bytes = await streamed;
    } catch (err) {
      if (!(err instanceof ArcpClientError)) throw err;
      console.error(
        `arcp submit: job ${jobId} succeeded, but ${describeError(err)}${details(err)}`,
      );
      return 1;
    }
  }
  if (outPath === undefined) {
    writeStdout(bytes);
    return 0;
  }
  try {
    await Deno.writeFile(outPath, bytes);
  } catch (err) {
    console.error(`arcp submit: job ${jobId} succeeded, but ${outPath}: ${describeError(err)}`);
    return 1;
  }
  print(`result (${bytes.length} bytes) written to ${outPath}`);
  return 0;
}

/** Decoded bytes of a `result_chunk` body (0 for a malformed one). */
function chunkSize(body: Record<string, unknown>): number {
  const chunk = EVENT_BODIES.result_chunk.safeParse(body).data;
  if (!chunk) return 0;
  if (chunk.encoding === "utf8") return encoder.encode(chunk.data).length;
  const pad = chunk.data.endsWith("==") ? 2 : chunk.data.endsWith("=") ? 1 : 0;
  return Math.floor((chunk.data.length * 3) / 4) - pad;
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

function writeStdout(data: string | Uint8Array): void {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  for (let n = 0; n < bytes.length;) n += Deno.stdout.writeSync(bytes.subarray(n));
}
