/**
 * Jobs: submit, idempotency, run, cancel, timeouts, expiry, terminal
 * outcomes and crash recovery. Knows sessions only as {@linkcode EventSink}s
 * and agents only through the sandbox interface.
 *
 * @example
 * ```ts
 * import { setDeadline } from "./mod.ts";
 * const stop = setDeadline(() => {}, Date.now() + 1000);
 * stop();
 * ```
 *
 * @module
 */
export * from "./job_manager.ts";
export * from "./sink.ts";
export * from "./submit_check.ts";
export * from "./timers.ts";
export * from "./drain.ts";
