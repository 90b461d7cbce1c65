/**
 * Limits shared by the host and the worker side of the sandbox. No
 * dependencies, so the worker can load it.
 *
 * @module
 */

/**
 * Events a worker may have in flight before the host grants more credit.
 * Larger than one KV commit holds of small events (~550 ticker events
 * fill a commit's bytes), so the credit the first commit of a window gives
 * back lets the agent emit while the next commit is in flight: with 256,
 * one ticker's window went out in a lone commit and one of 255, and the
 * worker, KV and the grant took turns (one ticker 1.35× – 1.44× the events/s
 * with 1024, same runtime CPU per event). What a job holds in flight is
 * bounded by {@linkcode EVENT_WINDOW_BYTES} as well, so large events do not
 * make the larger window a larger worst case.
 */
export const EVENT_WINDOW = 1024;

/**
 * Serialized bytes of events (and result chunks) a worker may have in
 * flight before the host grants more credit, counted as the runtime counts
 * an event against {@linkcode MAX_EVENT_BYTES}: the length of its body's
 * JSON, plus its kind's (a chunk: its data's). With 256 events the worst
 * case one job held was 256 of the largest events, 64 MiB; 8 MiB is an
 * eighth of that. It is still 32 of the largest events, so the largest
 * event always fits beside the credit the host holds back until a quarter of
 * the window is committed; about ten KV commits at their ~800 KiB limit, so
 * large events still go out while earlier ones commit; and over a hundred
 * times what a full window of small events takes (a ticker's progress
 * event: ~40), so small events keep the whole 1,024-event window.
 */
export const EVENT_WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * Events one `events` message carries at most: a worker sends the events an
 * agent emits in one turn of its event loop together, so the host, the relay
 * and the runtime handle one message per batch rather than one per event.
 */
export const EVENT_BATCH = 64;

/** Largest serialized event body the runtime accepts from an agent. */
export const MAX_EVENT_BYTES = 256 * 1024;

/** Largest serialized inline result. Larger results belong in a streamed result. */
export const MAX_RESULT_BYTES = 200 * 1024;

/** How often a worker proves its event loop is alive (ms). */
export const BEAT_INTERVAL_MS = 1000;

/** Calls a worker may have waiting on the runtime at once. */
export const MAX_PENDING_CALLS = 64;

/**
 * Largest serialized message of any other kind a worker may send (calls,
 * result chunks: a 1 MiB chunk is 1.4 MB as base64). The sandbox process
 * refuses anything larger before it reaches the runtime.
 */
export const MAX_MESSAGE_BYTES = 2 * 1024 * 1024;
