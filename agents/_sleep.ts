/**
 * An abortable sleep for the reference agents.
 *
 * @module
 */

/**
 * Waits `ms` milliseconds, or rejects with the signal's reason once it aborts.
 *
 * @param ms how long to wait
 * @param signal cancels the wait
 * @returns resolves after the wait
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
