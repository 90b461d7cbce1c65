/**
 * How `arcp submit` and `arcp watch` show a job: one line per event (a live
 * progress bar for `progress` events on a terminal), then the result as
 * JSON, or a streamed result's reassembled bytes as they are.
 *
 * @module
 */
import { ArcpClientError } from "../client/errors.ts";
import type { JobEvents } from "../client/job_stream.ts";
import type { JobResultPayload } from "../client/payloads.ts";
import { EVENT_BODIES } from "../protocol/events.ts";
import { describeError } from "./connection.ts";
import { eventLine } from "./event_line.ts";
import { LiveLine, progressBar } from "./progress_bar.ts";

/** Prints a job's events as they come. */
export class EventPrinter {
  readonly #tty = Deno.stdout.isTerminal();
  readonly #out = new LiveLine(writeStdout, terminalColumns);
  readonly #chunks = { count: 0, bytes: 0 };

  /** Whether stdout is a terminal (a live line, pretty JSON). */
  get tty(): boolean {
    return this.#tty;
  }

  /**
   * Prints every event of a stream until the job ends; throws when the
   * connection is lost first.
   *
   * @param stream the job's events
   */
  async print(stream: JobEvents): Promise<void> {
    try {
      for await (const event of stream.events()) {
        if (event.payload.kind === "result_chunk") {
          // The bytes come at the end; a terminal gets a count as they arrive.
          if (this.#tty) {
            this.#chunks.count++;
            this.#chunks.bytes += chunkSize(event.payload.body);
            this.#out.show(`result_chunk ${this.#chunks.count} (${this.#chunks.bytes} bytes)`);
          }
          continue;
        }
        const progress = this.#tty && event.payload.kind === "progress"
          ? EVENT_BODIES.progress.safeParse(event.payload.body).data
          : undefined;
        if (progress) this.#out.show(progressBar(progress));
        else this.#out.print(eventLine(event.payload));
      }
    } finally {
      this.#out.finish();
    }
  }
}

/**
 * Writes a successful job's result: a streamed one as its reassembled bytes,
 * an inline one as JSON; to `outPath` when given, else to stdout.
 *
 * @param command the command, for error lines
 * @param jobId the job
 * @param result its `job.result` payload
 * @param streamed its reassembled streamed result
 * @param outPath the file to write, if any
 * @param tty whether stdout is a terminal
 * @returns the exit code
 */
export async function writeResult(
  command: string,
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
        `arcp ${command}: job ${jobId} succeeded, but ${describeError(err)}${details(err)}`,
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
    console.error(
      `arcp ${command}: job ${jobId} succeeded, but ${outPath}: ${describeError(err)}`,
    );
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

/**
 * An error's `details` as ` {json}`, or nothing.
 *
 * @param err what was thrown
 * @returns the suffix
 */
export function details(err: unknown): string {
  const d = (err as { details?: unknown }).details;
  return d === undefined ? "" : ` ${JSON.stringify(d)}`;
}

/**
 * Prints a line on stdout.
 *
 * @param line the text, without a newline
 */
export function print(line: string): void {
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
