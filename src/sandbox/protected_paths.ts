/**
 * The one list of runtime-protected paths, computed once when the runtime
 * starts: its secrets (denied read and write) and the code it runs (denied
 * write). Sandbox host processes get it as `--deny-read` / `--deny-write`
 * flags (the outer wall), the lease guard refuses it in `ctx.fs` (the inner
 * wall), and a lease whose grant would overlap it is refused at submit.
 *
 * Why code is denied write but not read: the runtime's modules, the agents,
 * the deno executable and its configuration are public code, and reading
 * them gives an agent nothing it could not download; writing them would let
 * one job change what every later job (of every principal) runs. Deno's
 * cache (`DENO_DIR`) is denied read too: besides cached modules it holds the
 * `caches` API and origin storage of every program on the machine, i.e.
 * other jobs' data. Denying it costs nothing at run time: Deno's module
 * loader reads the cache without a permission check (measured on 2.9.6:
 * a host started with `--deny-read=$DENO_DIR` still loads npm and remote
 * modules).
 *
 * @module
 */
import { canonicalPathSync, normalizePath } from "../lease/canonical.ts";
import type { ProtectedAccess, ProtectedPath } from "../lease/protected_path.ts";
import { findDenoConfig } from "./deno_config.ts";

export type { ProtectedAccess, ProtectedPath } from "../lease/protected_path.ts";

/** Where the runtime's state and code are; {@linkcode runtimeProtectedPaths} adds the rest. */
export interface ProtectedSources {
  /** The KV file, or `:memory:`. */
  kvPath: string;
  /** The agents folder. */
  agentsDir: string;
  /** Secret files of the runtime's configuration (tokens file, TLS certificate and key). */
  secrets?: readonly string[];
}

/** Paths of the process itself, under each name `/proc` gives it. */
const PROCESS_PATHS: ReadonlyArray<[string, string]> = [
  ["/proc", "process information of the runtime and its sandbox hosts (environment, memory)"],
  ["/dev/fd", "the sandbox host's open files, including its channel to the runtime"],
];

/**
 * Deno's cache folder, found as Deno finds it: `DENO_DIR`, else the
 * platform's cache folder (`$XDG_CACHE_HOME/deno` or `~/.cache/deno` on
 * Linux, `~/Library/Caches/deno` on macOS, `%LOCALAPPDATA%\deno` on
 * Windows). `deno info --json` reports the same folder as `denoDir`.
 *
 * @param env reads an environment variable
 * @returns the absolute folder, or undefined when the environment does not say
 */
export function findDenoDir(
  env: (name: string) => string | undefined = readEnv,
): string | undefined {
  const explicit = env("DENO_DIR");
  if (explicit) return absolute(explicit);
  if (Deno.build.os === "windows") {
    const local = env("LOCALAPPDATA");
    return local ? `${local}\\deno` : undefined;
  }
  const home = env("HOME");
  if (Deno.build.os === "darwin") return home ? `${home}/Library/Caches/deno` : undefined;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${absolute(xdg)}/deno`;
  return home ? `${home}/.cache/deno` : undefined;
}

/**
 * Every path no lease reaches, each under every name it goes by (as given
 * and with symlinks resolved), with the reason a refusal will quote.
 *
 * @param sources the runtime's KV file, agents folder and secret files
 * @returns the protected paths
 * @example
 * ```ts ignore
 * import { runtimeProtectedPaths } from "./protected_paths.ts";
 * const paths = await runtimeProtectedPaths({ kvPath: "data/arcp.kv", agentsDir: "agents" });
 * paths.find((p) => p.reason.startsWith("the runtime's KV")); // { path: "/srv/app/data", … }
 * ```
 */
export async function runtimeProtectedPaths(sources: ProtectedSources): Promise<ProtectedPath[]> {
  const list: Array<[string, ProtectedAccess, string]> = PROCESS_PATHS.map((
    [path, reason],
  ) => [path, "read-write", reason]);
  // A KV Connect URL is no path on this machine.
  if (sources.kvPath !== ":memory:" && !/^https?:\/\//i.test(sources.kvPath)) {
    const kvDir = absolute(sources.kvPath).replace(/\/[^/]*$/, "") || "/";
    list.push([kvDir, "read-write", "the runtime's KV store: every principal's jobs and sessions"]);
  }
  for (const secret of sources.secrets ?? []) {
    list.push([secret, "read-write", "the runtime's configuration: tokens or TLS keys"]);
  }
  const denoDir = findDenoDir();
  if (denoDir) {
    list.push([
      denoDir,
      "read-write",
      "Deno's cache: the modules every job runs and other jobs' caches and storage",
    ]);
  }
  list.push([sources.agentsDir, "write", "the agents folder: the code every job runs"]);
  const root = packageRoot();
  if (root) list.push([root, "write", "the runtime's own modules"]);
  list.push([Deno.execPath(), "write", "the deno executable sandbox hosts run"]);
  const config = await findDenoConfig(Deno.mainModule);
  if (config) {
    list.push([config, "write", "the Deno configuration modules are resolved with"]);
    const lock = config.replace(/[^/]*$/, "deno.lock");
    const hasLock = await Deno.stat(lock).then((s) => s.isFile, () => false);
    if (hasLock) list.push([lock, "write", "the lockfile that pins the modules jobs run"]);
  }
  return list.flatMap(([path, access, reason]) =>
    namesOf(path).map((name) => ({ path: name, access, reason }))
  );
}

/** The runtime's package folder when its modules are local files. */
function packageRoot(): string | undefined {
  const url = new URL("../../", import.meta.url);
  if (url.protocol !== "file:" || url.pathname.includes("/deno-compile-")) return undefined;
  return normalizePath(decodeURIComponent(url.pathname));
}

/** A path as given (made absolute) and with its symlinks resolved. */
function namesOf(path: string): string[] {
  const lexical = absolute(path);
  try {
    return [...new Set([lexical, canonicalPathSync(lexical)])];
  } catch {
    // Unresolvable: its lexical name still guards it.
    return [lexical];
  }
}

function absolute(path: string): string {
  return normalizePath(path.startsWith("/") ? path : `${Deno.cwd()}/${path}`);
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    // An embedder without --allow-env: the platform default is all we know.
    return undefined;
  }
}
