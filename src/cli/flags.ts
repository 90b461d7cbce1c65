/**
 * The `deno` flags the runtime runs with: the unstable APIs it uses and the
 * permissions it needs. One list for the `deno.json` tasks (checked by
 * `flags_test.ts`, since JSON cannot import it), the `compile` script and
 * the test harness, so a permission added in one place cannot be missing in
 * another.
 *
 * @example
 * ```ts
 * import { RUN_FLAGS } from "./flags.ts";
 * const args = ["run", ...RUN_FLAGS, "src/cli/main.ts", "serve"];
 * console.log(args.includes("--allow-run")); // true: sandbox hosts are processes
 * ```
 *
 * @module
 */

/** The unstable APIs: Deno KV, and Worker `deno.permissions` (the sandbox's outer wall). */
export const UNSTABLE_FLAGS: readonly string[] = [
  "--unstable-kv",
  "--unstable-worker-options",
];

/**
 * What the runtime may touch. `--allow-run` starts sandbox hosts; no
 * `--allow-ffi`, and `--no-prompt` so a missing permission fails instead of
 * waiting on a terminal nobody watches.
 */
export const PERMISSION_FLAGS: readonly string[] = [
  "--no-prompt",
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
];

/**
 * V8 heap settings. The young generation's semi-spaces grow with the rate
 * objects survive (up to 16 MiB each by default) and never shrink back
 * while the runtime runs: a burst of connecting sessions, whose objects all
 * survive, left ~34 MiB of young generation resident, more than the
 * sessions themselves held (1,000 idle sessions: 91 KiB each, of which
 * ~35 KiB that young generation). At 4 MiB it stays ≤ ~12 MiB; event
 * throughput showed no loss in the bench.
 */
export const HEAP_FLAGS: readonly string[] = ["--v8-flags=--max-semi-space-size=4"];

/**
 * Environment of the `deno` process that runs the runtime. Deno runs a
 * thread's event loop and its pending operations as tasks of a Tokio
 * current-thread scheduler, which reads the sockets that became ready only
 * when no task is ready or after `event_interval` task runs (61 by
 * default). A busy runtime nearly always has a task ready (a KV commit
 * finished on the writer thread, a chain of socket writes), so beside 5,000
 * starting sleepers a `session.ping` or `/healthz` waited dozens of turns to
 * be read. Every 7th task run bounds that to a few turns, at no measurable
 * CPU per job (bench/RESULTS.md, "Sockets wait behind ready tasks"). Only
 * for the runtime's own process: a load generator beside it on the same
 * cores took more CPU from it with this set.
 */
export const RUN_ENV: Readonly<Record<string, string>> = { DENO_TOKIO_EVENT_INTERVAL: "7" };

/** Everything `deno run`, `deno test` or `deno compile` needs to run the runtime. */
export const RUN_FLAGS: readonly string[] = [
  ...UNSTABLE_FLAGS,
  ...PERMISSION_FLAGS,
  ...HEAP_FLAGS,
];
