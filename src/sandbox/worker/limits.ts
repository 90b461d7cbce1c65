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
 * with 1024, same runtime CPU per event). The cost is the worst case held
 * per job: this many events (or result chunks) of up to
 * {@linkcode MAX_EVENT_BYTES} each.
 */
export const EVENT_WINDOW = 1024;

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
