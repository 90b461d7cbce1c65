/**
 * Finds the `deno.json` the runtime process resolves modules with, so that
 * sandbox hosts resolve an agent's imports (an import map entry such as
 * `@arcp/runtime/agent`) exactly as the runtime did when it described the
 * agent. Hosts run a main module inside the package, which is remote when
 * the package came from a registry, and Deno discovers no configuration
 * for a remote main module.
 *
 * @module
 */

/** The file names Deno looks for in each folder, in its order. */
const CONFIG_NAMES = ["deno.json", "deno.jsonc"];

/**
 * The configuration file Deno discovered for a main module: the first
 * `deno.json` or `deno.jsonc` in its folder or a parent folder. A remote
 * main module has none.
 *
 * @param mainModule URL of the main module (`Deno.mainModule`)
 * @returns the file's path, or undefined
 * @example
 * ```ts ignore
 * import { findDenoConfig } from "./deno_config.ts";
 * console.log(await findDenoConfig(Deno.mainModule)); // e.g. "/srv/app/deno.json"
 * ```
 */
export async function findDenoConfig(mainModule: string): Promise<string | undefined> {
  const url = new URL(mainModule);
  if (url.protocol !== "file:") return undefined;
  let dir = new URL(".", url);
  while (true) {
    for (const name of CONFIG_NAMES) {
      const candidate = new URL(name, dir);
      const isFile = await Deno.stat(candidate).then((s) => s.isFile, () => false);
      if (isFile) return decodeURIComponent(candidate.pathname);
    }
    const parent = new URL("..", dir);
    if (parent.href === dir.href) return undefined;
    dir = parent;
  }
}
