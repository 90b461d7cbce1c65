/**
 * Puts remote modules into Deno's cache from the trusted runtime process.
 * Sandbox hosts run with `--cached-only` and so never download; when the
 * package itself is remote (imported from JSR or a URL), the host's main
 * module and the worker bootstrap are not in the runtime's own module graph
 * and must be cached before the first host starts.
 *
 * @module
 */

/** How a cache run resolves modules: the same way the hosts will. */
export interface ModuleCacheOptions {
  /** The deno executable. */
  denoPath: string;
  /** The `deno.json` hosts run with, if any (its import map and lockfile). */
  configPath?: string;
}

/**
 * Caches modules and everything they import with `deno cache`, run with the
 * hosts' executable and configuration. It keeps this process's environment:
 * hosts take their `DENO_DIR` from it, so the cache it fills is the one
 * they read, and downloading may need its proxy and CA settings, which
 * hosts (which never download) do not get.
 *
 * @param urls the module URLs; `file:` URLs need no cache and are skipped
 * @param options how hosts resolve modules
 * @returns resolves once every module is cached; rejects with Deno's own words when one cannot be
 * @example
 * ```ts ignore
 * import { cacheModules } from "./module_cache.ts";
 * await cacheModules(["https://jsr.io/@arcp/runtime/0.1.0/src/sandbox/host/main.ts"], {
 *   denoPath: Deno.execPath(),
 * });
 * ```
 */
export async function cacheModules(urls: string[], options: ModuleCacheOptions): Promise<void> {
  const remote = urls.filter((u) => !u.startsWith("file:"));
  if (remote.length === 0) return;
  const { success, stderr } = await new Deno.Command(options.denoPath, {
    args: [
      "cache",
      ...(options.configPath ? ["--config", options.configPath] : []),
      ...remote,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (!success) {
    throw new Error(
      `could not cache the sandbox host's modules (${remote.join(", ")}): ${
        new TextDecoder().decode(stderr).trim()
      }`,
    );
  }
}
