/**
 * `arcp submit --interactive`: each line typed on stdin goes to the running
 * job as one input (a string), and end of input (Ctrl-D, or the end of a
 * piped file) ends the job's input. A full input queue is retried, so no
 * line is lost; any other refusal is reported and stops the forwarding.
 *
 * @module
 */
import { ArcpClientError } from "../client/errors.ts";
import type { JobHandle } from "../client/job_handle.ts";
import { describeError } from "./connection.ts";

/** First wait before a full queue is retried (ms); doubles up to {@linkcode MAX_RETRY_MS}. */
const FIRST_RETRY_MS = 50;

/** Longest wait between retries of a full queue (ms). */
const MAX_RETRY_MS = 2_000;

/**
 * Forwards stdin lines to a job until stdin ends or the job does.
 *
 * @param job the job (accepted)
 * @param lines the lines to send, e.g. stdin split into lines
 * @param jobEnded settles when the job has ended
 * @returns resolves once forwarding stopped
 */
export async function forwardLines(
  job: JobHandle,
  lines: AsyncIterable<string>,
  jobEnded: Promise<unknown>,
): Promise<void> {
  let over = false;
  jobEnded.then(() => over = true, () => over = true);
  try {
    for await (const line of lines) {
      if (over) return;
      await sendRetrying(job, line, false);
    }
    if (!over) await sendRetrying(job, undefined, true);
  } catch (err) {
    if (!over) console.error(`arcp submit: input not sent: ${describeError(err)}`);
  }
}

async function sendRetrying(job: JobHandle, content: unknown, end: boolean): Promise<void> {
  for (let wait = FIRST_RETRY_MS;; wait = Math.min(wait * 2, MAX_RETRY_MS)) {
    try {
      await job.send(content, { end });
      return;
    } catch (err) {
      if (!(err instanceof ArcpClientError) || !err.retryable) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * Stdin as lines (without their line ends).
 *
 * @returns the lines
 */
export async function* stdinLines(): AsyncGenerator<string> {
  let rest = "";
  for await (const text of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    rest += text;
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, nl).replace(/\r$/, "");
      rest = rest.slice(nl + 1);
    }
  }
  if (rest !== "") yield rest;
}
