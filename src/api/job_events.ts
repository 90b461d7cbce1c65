/**
 * A job's events for operators: its history read from a cursor, and the
 * same as Server-Sent Events, history then live, to its terminal.
 *
 * The stream reads the job's history in KV, never a copy in memory: it
 * reads a batch only when the client has taken the previous one (a pull
 * stream), so a slow reader holds one batch at most, and each entry is
 * sent once, in order, because the cursor only moves forward. Between
 * batches it waits on a KV watch of the job's record, which every commit
 * of the job's history rewrites.
 *
 * @module
 */
import type { JobRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import { TERMINAL_STATUSES } from "../protocol/messages.ts";

/** One entry of a job's history. */
export interface JobEventItem {
  /** Its position in the job's history, from 0. */
  index: number;
  /** The envelope type: `job.event`, `job.result`, `job.error`. */
  type: string;
  /** The event kind, for a `job.event`. */
  kind?: string;
  /** When it happened (the event's own time; a terminal's is the job's end). */
  time: string;
  /** The envelope's payload (credential values are redacted in the history). */
  payload: Record<string, unknown>;
}

/** A page of a job's history. */
export interface JobEventPage {
  /** The entries, in order. */
  events: JobEventItem[];
  /** Where the next page starts (`after`). */
  next_after: number;
  /** Whether more entries are in KV now. */
  has_more: boolean;
}

/** Entries sent per stream step. */
const STREAM_BATCH = 64;

/** Time between the stream's comment heartbeats (ms). */
export const HEARTBEAT_MS = 15_000;

/**
 * One history entry as the API shows it.
 *
 * @param index its position
 * @param text the envelope as logged
 * @param job the job's record (a terminal's time is its `ended_at`)
 * @returns the item
 */
export function eventItem(index: number, text: string, job: JobRecord): JobEventItem {
  const envelope = JSON.parse(text) as { type: string; payload?: Record<string, unknown> };
  const payload = envelope.payload ?? {};
  const item: JobEventItem = {
    index,
    type: envelope.type,
    time: typeof payload.ts === "string"
      ? payload.ts
      : isTerminal(envelope.type)
      ? job.ended_at ?? job.created_at
      : job.created_at,
    payload,
  };
  if (envelope.type === "job.event" && typeof payload.kind === "string") item.kind = payload.kind;
  return item;
}

/**
 * A page of a job's history.
 *
 * @param store where it is
 * @param job the job
 * @param after entries with `index > after`
 * @param limit at most this many
 * @returns the page
 */
export async function readEvents(
  store: Store,
  job: JobRecord,
  after: number,
  limit: number,
): Promise<JobEventPage> {
  const events: JobEventItem[] = [];
  let hasMore = false;
  for await (const [n, text] of store.jobLogAfter(job.job_id, after)) {
    if (events.length === limit) {
      hasMore = true;
      break;
    }
    events.push(eventItem(n, text, job));
  }
  return { events, next_after: events.at(-1)?.index ?? after, has_more: hasMore };
}

/**
 * A job's history after a position, then its live events, as
 * Server-Sent Events; the stream ends after the terminal entry.
 *
 * @param store where the history is
 * @param job the job's record as read from KV (never the in-memory one, which
 *   turns terminal before its terminal entry is committed)
 * @param after entries with `index > after`
 * @param signal ends the stream early (the runtime closes)
 * @returns the stream of SSE bytes
 */
export function eventStream(
  store: Store,
  job: JobRecord,
  after: number,
  signal: AbortSignal,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let cursor = after;
  let latest: JobRecord = job;
  let done = false;
  // The session feeds' follower: KV Connect's watch, or polling with back-off on a
  // local file (whose watch misses commits of the other nodes sharing it). It yields
  // at once, so no commit after the first read goes unnoticed.
  const following = new AbortController();
  const changes = store.followJob(job.job_id, following.signal);
  let change: Promise<IteratorResult<string | null>> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let wake: (() => void) | undefined;
  const stop = () => {
    done = true;
    clearTimeout(timer);
    wake?.();
    following.abort();
  };
  signal.addEventListener("abort", stop, { once: true });

  /** Waits for the job's record to change, or for the heartbeat: true on a change. */
  const changed = async (): Promise<boolean> => {
    change ??= changes.next();
    const beat = new Promise<false>((resolve) => {
      wake = () => resolve(false);
      timer = setTimeout(() => resolve(false), HEARTBEAT_MS);
    });
    const result = await Promise.race([change, beat]);
    clearTimeout(timer);
    if (result === false) return false;
    change = undefined;
    if (result.done) {
      done = true;
      return false;
    }
    latest = (await store.getJob(job.job_id)) ?? latest;
    return true;
  };

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (!done) {
          const batch: string[] = [];
          for await (const [n, text] of store.jobLogAfter(job.job_id, cursor)) {
            const item = eventItem(n, text, latest);
            batch.push(`id: ${n}\nevent: ${item.type}\ndata: ${JSON.stringify(item)}\n\n`);
            cursor = n;
            if (isTerminal(item.type)) {
              done = true;
              break;
            }
            if (batch.length === STREAM_BATCH) break;
          }
          if (batch.length > 0) {
            controller.enqueue(encoder.encode(batch.join("")));
            break;
          }
          // Nothing after the cursor. A record read from KV that is terminal
          // was committed with the last entry: nothing more will come (the
          // history may also have been swept). A live job's may.
          if (TERMINAL_STATUSES.has(latest.status)) {
            done = true;
            break;
          }
          if (!await changed() && !done) {
            controller.enqueue(encoder.encode(": ping\n\n"));
            break;
          }
        }
        if (done) {
          stop();
          controller.close();
        }
      } catch (err) {
        stop();
        controller.error(err);
      }
    },
    cancel() {
      stop();
    },
  }, { highWaterMark: 1 });
}

function isTerminal(type: string): boolean {
  return type === "job.result" || type === "job.error";
}
