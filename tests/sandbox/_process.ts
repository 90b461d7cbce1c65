/**
 * Test helper: whether a sandbox process is gone.
 *
 * @module
 */

/**
 * Whether a process is gone (or a zombie, already dead) within `withinMs`.
 *
 * @param pid the process
 * @param withinMs how long to wait for it
 * @returns true once it is gone; false if it still runs after `withinMs`
 */
export async function processGone(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => undefined);
    if (status === undefined || /^State:\s+Z/m.test(status)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
