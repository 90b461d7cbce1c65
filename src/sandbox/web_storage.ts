/**
 * Web storage (`caches`, `localStorage`) of one sandbox process. Deno keeps
 * it on disk under `DENO_DIR/location_data`, keyed by the process's
 * `--location` origin, and writes it whatever the process's permissions
 * (measured on Deno 2.9.6: `--deny-write` on `DENO_DIR` does not stop
 * `caches.put`). Without `--location` a worker's key comes from its entry
 * module, which is the same for every job of an agent, so one job could
 * read what another principal's job cached. Each sandbox process therefore
 * gets an origin of its own, and its storage is deleted when it exits.
 *
 * @module
 */
import { sha256Hex } from "../protocol/ids.ts";

/** One process's web storage origin. */
export interface WebStorageScope {
  /** The `--location` flag that gives the process its own origin. */
  flag: string;
  /** Deletes whatever the process stored (call once it has exited). */
  remove(): Promise<void>;
}

/**
 * A fresh, unguessable origin for one sandbox process.
 *
 * @param denoDir Deno's cache folder, where web storage lives; when unknown, nothing is deleted
 * @returns the flag and the clean-up step
 * @example
 * ```ts ignore
 * const scope = webStorageScope("/root/.cache/deno");
 * // spawn `deno run ${scope.flag} …`, then after it exits:
 * await scope.remove();
 * ```
 */
export function webStorageScope(denoDir: string | undefined): WebStorageScope {
  const id = Array.from(
    crypto.getRandomValues(new Uint8Array(12)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const origin = `http://sandbox-${id}.invalid`;
  return {
    flag: `--location=${origin}/`,
    async remove() {
      if (!denoDir) return;
      const key = await sha256Hex(origin);
      for (
        const dir of [
          `${denoDir}/location_data/${key}`,
          `${denoDir}/location_data/web_cache/${key}`,
        ]
      ) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  };
}
