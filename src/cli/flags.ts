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

/** Everything `deno run`, `deno test` or `deno compile` needs to run the runtime. */
export const RUN_FLAGS: readonly string[] = [...UNSTABLE_FLAGS, ...PERMISSION_FLAGS];
