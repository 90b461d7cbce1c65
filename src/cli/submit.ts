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
import type { JobEvents } from "../client/job_stream.ts";
import type { SubmitRequest } from "../client/requests.ts";
import { nowIso } from "../protocol/time.ts";
import { agentRefs } from "./agents.ts";
import {
  COMMON_OPTIONS,
  CONNECTION_USAGE,
  type ConnectionSettings,
  connectionSettings,
  describeError,
  withClient,
} from "./connection.ts";
import { forwardLines, stdinLines } from "./interactive.ts";
import { details, EventPrinter, print, writeResult } from "./job_output.ts";
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
result does not add up, 2 on bad usage. Ctrl-C cancels the job and waits
for its end (a second Ctrl-C within 2 s, as npx forwards, is the same one;
a later one stops waiting). When the connection drops (the runtime
restarts, or arcp cancel takes the session over from another terminal) the
session is resumed and the job's real outcome reported. The session's
resume token is kept in ~/.arcp/cli-sessions.json (env ARCP_CLI_SESSIONS)
until the job ends, for arcp cancel.`;

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
    connection.url,
    () => ArcpClient.connect(connection.url, { token: connection.token, clientName: "arcp-cli" }),
    (client) => follow(client, client.submit(request), connection, out, interactive),
  );
}

async function follow(
  client: ArcpClient,
  job: JobHandle,
  connection: ConnectionSettings,
  outPath: string | undefined,
  interactive = false,
): Promise<number> {
  const url = connection.url;
  let jobId: string;
  try {
    const accepted = await job.accepted;
    jobId = accepted.job_id;
    print(`job ${jobId} accepted (${accepted.agent})`);
  } catch (err) {
    const unknown = err instanceof ArcpClientError &&
      (err.code === "AGENT_NOT_AVAILABLE" || err.code === "AGENT_VERSION_NOT_AVAILABLE");
    const available = unknown ? `; available: ${agentRefs(client.agents)}` : "";
    console.error(`arcp submit: refused: ${describeError(err)}${details(err)}${available}`);
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

  const printer = new EventPrinter();
  let current = client;
  let stream: JobEvents = job;
  const interrupt = onInterrupt(() => {
    console.error(`arcp submit: cancelling ${jobId}; waiting for it to end`);
    current.cancel(jobId, "interrupted from the arcp CLI").catch((err) =>
      console.error(`arcp submit: cancel refused: ${describeError(err)}`)
    );
  });
  if (interactive) void forwardLines(job, stdinLines(), job.result);
  try {
    while (true) {
      // Asked for before any event is read, so a streamed result's chunks are kept.
      const streamed = stream.resultBytes();
      streamed.catch(() => {});
      try {
        await printer.print(stream);
        const result = await stream.result;
        await keep(() => store.forgetJob(stored, jobId));
        return await writeResult("submit", jobId, result, streamed, outPath, printer.tty);
      } catch (err) {
        if (err instanceof JobFailedError) {
          console.error(
            `arcp submit: job ${jobId} ${err.finalStatus}: ${describeError(err)}${details(err)}`,
          );
          await keep(() => store.forgetJob(stored, jobId));
          return 1;
        }
        if (!(err instanceof ArcpClientError)) throw err;
        console.error(
          `arcp submit: connection lost (${
            describeError(err)
          }); resuming session ${stored.session_id} to follow ${jobId}`,
        );
        const lastSeq = current.lastEventSeq;
        if (current !== client) await current.close().catch(() => {});
        const resumed = await resumeSession(connection, store, stored, jobId, lastSeq, current);
        if (!resumed) {
          console.error(
            `arcp submit: could not resume session ${stored.session_id}; job ${jobId} may still be running; arcp cancel ${jobId} stops it`,
          );
          return 1;
        }
        current = resumed;
        stream = current.watch(jobId);
        if (interrupt.interrupted()) {
          current.cancel(jobId, "interrupted from the arcp CLI").catch(() => {});
        }
      }
    }
  } finally {
    interrupt.stop();
    if (current !== client) await current.close().catch(() => {});
  }
}

/** How long `arcp submit` waits for `arcp cancel` to hand the session back (ms). */
const HANDBACK_MS = 15_000;

/**
 * Resumes the session that submitted the job, once the runtime answers
 * again: while nothing listens, it retries until the resume window is over.
 * The token may have been rotated by `arcp cancel` from another terminal,
 * which stores the new one (and marks the session in use while it holds
 * it), so the stored session is read again before each try.
 *
 * @returns the resumed client, or undefined when the session cannot be resumed
 */
async function resumeSession(
  connection: ConnectionSettings,
  store: SessionStore,
  stored: StoredSession,
  jobId: string,
  lastEventSeq: number,
  previous: ArcpClient,
): Promise<ArcpClient | undefined> {
  const windowEnds = Date.now() + previous.resumeWindowSec * 1000;
  let token = previous.resumeToken;
  let delay = 100;
  let refusedAt: number | undefined;
  while (Date.now() < windowEnds) {
    const latest = await store.findSession(connection.url, stored.session_id).catch(() =>
      undefined
    );
    if (
      latest && latest.in_use && (refusedAt === undefined || Date.now() - refusedAt < HANDBACK_MS)
    ) {
      // arcp cancel holds the session; taking it over now would cut its answer off.
      await sleep(200);
      continue;
    }
    if (latest) token = latest.resume_token;
    try {
      const client = await ArcpClient.connect(connection.url, {
        token: connection.token,
        clientName: "arcp-cli",
        resume: { sessionId: stored.session_id, resumeToken: token, lastEventSeq },
        watch: [jobId],
      });
      stored.resume_token = client.resumeToken;
      await keep(() => store.save({ ...stored, last_event_seq: lastEventSeq, saved_at: nowIso() }));
      console.error(`arcp submit: resumed session ${stored.session_id}`);
      return client;
    } catch (err) {
      // Nothing listens yet, or the runtime is still starting (503): wait for it.
      if (err instanceof ArcpClientError && err.code === "CONNECTION_CLOSED") {
        await sleep(delay);
        delay = Math.min(delay * 2, 2000);
        continue;
      }
      if (!(err instanceof ArcpClientError) || err.code !== "RESUME_WINDOW_EXPIRED") throw err;
      // A token rotated elsewhere arrives in the store; past the hand-back time, give up.
      refusedAt ??= Date.now();
      if (Date.now() - refusedAt > HANDBACK_MS) return undefined;
      const tried = token;
      while (Date.now() - refusedAt <= HANDBACK_MS) {
        const again = await store.findSession(connection.url, stored.session_id).catch(() =>
          undefined
        );
        if (again && again.resume_token !== tried) break;
        await sleep(200);
      }
    }
  }
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** How long after a Ctrl-C another one counts as the same (a wrapper such as npx forwards it). */
const SAME_INTERRUPT_MS = 2000;

/**
 * Cancels on the first Ctrl-C and keeps waiting for the job's end. A second
 * signal within {@linkcode SAME_INTERRUPT_MS} is the same one delivered
 * twice (the terminal signals the process group, and `npx` forwards it to
 * its child as well), so it is ignored; a later one gives up waiting.
 */
function onInterrupt(cancel: () => void): { stop(): void; interrupted(): boolean } {
  let first: number | undefined;
  const listener = () => {
    if (first === undefined) {
      first = Date.now();
      cancel();
      return;
    }
    if (Date.now() - first < SAME_INTERRUPT_MS) return;
    console.error("arcp submit: stopped waiting; the job may still be ending");
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", listener);
  return {
    stop: () => Deno.removeSignalListener("SIGINT", listener),
    interrupted: () => first !== undefined,
  };
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
