/**
 * A temporary directory for a test's KV file, removed when the test's
 * `await using` scope ends, whatever the test did.
 *
 * @module
 */

/** A temporary directory and the KV file path inside it. */
export interface TempKv extends AsyncDisposable {
  /** The directory. */
  dir: string;
  /** `arcp.kv` in it (not created). */
  kvPath: string;
}

/**
 * Makes a temporary directory for a KV file.
 *
 * @param prefix the directory name's prefix
 * @returns the directory, removed on dispose
 * @example
 * ```ts ignore
 * await using tmp = await tempKv("arcp_migrate_");
 * const store = await Store.open({ path: tmp.kvPath });
 * ```
 */
export async function tempKv(prefix: string): Promise<TempKv> {
  const dir = await Deno.makeTempDir({ prefix });
  return {
    dir,
    kvPath: `${dir}/arcp.kv`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}
