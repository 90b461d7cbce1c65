/**
 * The `deno run` flags every process that loads agent code starts with
 * (sandbox processes, agent describers): no prompts, no downloads (what an
 * agent imports must already be cached), the runtime's own configuration,
 * and a V8 heap cap. Each caller adds its permissions and main module.
 *
 * @module
 */

/**
 * The common flags of a deno child that runs agent code.
 *
 * @param options the `deno.json` to resolve modules with, and the heap cap in MiB
 * @returns `run` and its flags, without permissions or a main module
 * @example
 * ```ts ignore
 * const args = [...childRunFlags({ heapMb: 256 }), "--allow-read=/srv/agents", main];
 * ```
 */
export function childRunFlags(options: { configPath?: string; heapMb: number }): string[] {
  return [
    "run",
    "--no-prompt",
    "--unstable-worker-options",
    "--cached-only",
    ...(options.configPath ? ["--config", options.configPath] : []),
    `--v8-flags=--max-old-space-size=${options.heapMb}`,
  ];
}
