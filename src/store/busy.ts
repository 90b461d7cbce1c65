/**
 * Several processes on one SQLite KV file take turns writing: a commit that
 * meets another process's write lock fails with "database is locked" at
 * once. That is contention, not a failing disk, so it is retried briefly
 * before anyone is told storage fails.
 *
 * @module
 */

/** How long a write keeps retrying a locked database (ms). */
const BUSY_RETRY_MS = 5_000;

/**
 * Whether an error is SQLite's lock contention.
 *
 * @param err the error
 * @returns true for "database is locked" or "busy"
 */
export function isBusy(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /database (table )?is locked|database is busy/i.test(message);
}

/**
 * Runs a KV write, again after a short random back-off while another
 * process holds the file's write lock, for up to 5 s; then throws the last
 * error (the caller's storage-failure handling takes over).
 *
 * @param write builds and commits the write (afresh each attempt)
 * @returns what it returned
 * @example
 * ```ts ignore
 * const res = await whileBusy(() => kv.atomic().check(entry).set(key, value).commit());
 * ```
 */
export async function whileBusy<T>(write: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + BUSY_RETRY_MS;
  let wait = 1;
  for (;;) {
    try {
      return await write();
    } catch (err) {
      if (!isBusy(err) || Date.now() > deadline) throw err;
      // Jittered, so processes contending for the lock do not retry in step.
      await new Promise((r) => setTimeout(r, wait * (0.5 + Math.random())));
      wait = Math.min(wait * 2, 10);
    }
  }
}
