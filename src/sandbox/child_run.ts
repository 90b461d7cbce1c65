/**
 * The `deno run` flags every process that loads agent code starts with
 * (sandbox processes, agent describers): no prompts, no downloads (what an
 * agent imports must already be cached), the runtime's own configuration,
 * a V8 heap cap, and garbage collection on the isolates' own threads
 * (`--single-threaded-gc`). Each caller adds its permissions and main module.
 *
 * A sandbox process's isolates allocate a little per job and collect often
 * and small; V8's helper threads, woken for each collection, cost more than
 * they saved there (a reused echo back to back, three alternating runs each:
 * 170–200 µs of sandbox CPU per job instead of 218–229, the worker thread
 * and the helpers both lower; the resident set unchanged; no change with
 * jobs 1 ms apart, where waking the threads dominates). Marking stays
 * incremental, so a large heap is still collected in steps between the
 * agent's turns, not in one pause.
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
    `--v8-flags=--max-old-space-size=${options.heapMb},--single-threaded-gc`,
  ];
}
