/**
 * Lease → Deno permissions: the outer wall. A worker gets `read`/`write`
 * for the static prefixes of its `fs.read`/`fs.write` globs and nothing
 * else. `net` is never derived from a lease: Deno's `net` permission for a
 * `host:port` also lets a worker listen there, so a job with `net.fetch`
 * gets `net` only for its egress proxy (`egress_proxy.ts`), which the
 * launcher starts and which checks each URL. The exact glob check on
 * canonical paths and URLs is the inner wall; this module only makes sure
 * the outer one is never wider than the lease.
 *
 * What Deno 2.9.6 worker permissions can express (measured with real
 * workers, see `tests/sandbox/permissions_test.ts`):
 *
 * - Paths are granted recursively and checked lexically: `..` in a
 *   requested path is resolved before the check, symlinks are not, so a
 *   symlink that already exists inside a granted directory is followed out
 *   of it (the inner wall, `canonical.ts`, catches that).
 * - There is no deny list: `read` / `write` take `"inherit"`, a boolean or
 *   a list of paths; unknown keys such as `denyRead` are silently ignored,
 *   and `-path` / `!path` are just relative paths. So a sub-path of a
 *   granted path cannot be taken back. Instead, a prefix that contains, lies
 *   inside, or (through a symlink in the prefix itself) resolves onto a
 *   denied path is not granted at all: that glob gets no outer-wall
 *   permission. `/`, `/proc`, `/dev` and any ancestor of a denied path are
 *   therefore never granted. {@linkcode ALWAYS_DENIED_PATHS} are denied
 *   whatever the caller passes.
 *
 * Globs are taken as written: a prefix that is not already canonical
 * (`/srv/../etc/**`, `/srv/./x`) matches no canonical path, so it grants
 * nothing here either. Canonicalize or reject such patterns at submit if
 * they should work.
 *
 * @module
 */
import type { Lease } from "../protocol/lease.ts";
import { canonicalPathSync, normalizePath } from "../lease/canonical.ts";

export { normalizePath } from "../lease/canonical.ts";

/** The `deno.permissions` option of a Worker. */
export interface WorkerPermissions {
  /** Readable paths, or false. */
  read: string[] | false;
  /** Writable paths, or false. */
  write: string[] | false;
  /** Reachable `host:port`s: false from a lease; the launcher sets its egress proxy's address. */
  net: string[] | false;
  /** Always false. */
  env: false;
  /** Always false. */
  run: false;
  /** Always false. */
  ffi: false;
  /** Always false. */
  sys: false;
  /** Always false. */
  import: false;
}

/** Options of {@linkcode permissionsForLease}. */
export interface PermissionOptions {
  /**
   * Paths a worker must never read or write whatever the lease says: the
   * runtime's KV directory, its config, secrets. Relative paths resolve
   * against the current directory. {@linkcode ALWAYS_DENIED_PATHS} are
   * added to these.
   */
  denyPaths?: readonly string[];
  /** Paths a worker must never write (the runtime's code); reading them is allowed. */
  denyWritePaths?: readonly string[];
}

/**
 * Paths denied to every worker: the host process's own `/proc` entry
 * (environment, memory, open files) under each of its names.
 */
export const ALWAYS_DENIED_PATHS: readonly string[] = [
  "/proc/self",
  "/proc/thread-self",
  "/dev/fd",
];

const WILDCARD = /[*?]/;

/**
 * The deepest path a path glob cannot leave: every segment before the first
 * one holding `*` or `?`.
 *
 * @param glob an absolute path glob, e.g. `/srv/data/**`
 * @returns the static prefix, or undefined for a relative glob or one whose
 *   prefix is not canonical (`.`, `..` or empty segments), which matches no
 *   canonical path
 * @example
 * ```ts
 * import { staticPrefix } from "./permissions.ts";
 * staticPrefix("/srv/data/*.csv"); // "/srv/data"
 * staticPrefix("/srv/../etc/**"); // undefined
 * ```
 */
export function staticPrefix(glob: string): string | undefined {
  if (!glob.startsWith("/")) return undefined;
  const fixed: string[] = [];
  for (const seg of glob.slice(1).split("/")) {
    if (WILDCARD.test(seg)) break;
    fixed.push(seg);
  }
  const prefix = "/" + fixed.join("/");
  return normalizePath(prefix) === prefix ? prefix : undefined;
}

function within(path: string, dir: string): boolean {
  return path === dir || dir === "/" || path.startsWith(dir + "/");
}

/** Every name a denied path goes by: as given, and as resolved. */
function deniedForms(paths: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const p of [...ALWAYS_DENIED_PATHS, ...paths]) {
    const lexical = normalizePath(p.startsWith("/") ? p : `${Deno.cwd()}/${p}`);
    forms.add(lexical);
    try {
      forms.add(canonicalPathSync(lexical));
    } catch {
      // Unresolvable: its lexical name still guards it.
    }
  }
  return [...forms];
}

function grantable(prefix: string, denied: string[]): boolean {
  let real: string;
  try {
    real = canonicalPathSync(prefix);
  } catch {
    return false;
  }
  return ![prefix, real].some((p) => denied.some((d) => within(p, d) || within(d, p)));
}

function unique(items: Array<string | undefined>): string[] | false {
  const set = [...new Set(items.filter((x): x is string => x !== undefined))];
  return set.length > 0 ? set : false;
}

/**
 * The narrowest Deno permissions that cover a lease, never wider than it
 * and never touching a denied path (a pattern that would is refused at
 * submit, see `protection.ts`; dropping it here is the last resort for a
 * filesystem that changed since). Reads the filesystem (symlinks of
 * granted prefixes and denied paths), synchronously.
 *
 * @param lease the effective lease
 * @param options paths to deny whatever the lease says
 * @returns the worker's `deno.permissions`
 * @example
 * ```ts
 * import { permissionsForLease } from "./permissions.ts";
 * const p = permissionsForLease(
 *   { "fs.read": ["/srv/data/**", "/**"], "net.fetch": ["https://api.example.com/**"] },
 *   { denyPaths: ["/srv/arcp-kv"] },
 * );
 * p.read; // ["/srv/data"]: "/" contains a denied path
 * p.net; // false: the launcher grants the job's egress proxy instead
 * ```
 */
export function permissionsForLease(
  lease: Lease,
  options: PermissionOptions = {},
): WorkerPermissions {
  // Resolving the denied paths costs a realpath each: only a lease with
  // filesystem globs needs them.
  const paths = (
    globs: readonly string[] | undefined,
    denied: () => string[],
  ): string[] | false => {
    if (!globs?.length) return false;
    const forms = denied();
    return unique(globs.map(staticPrefix).filter((p) => p !== undefined && grantable(p, forms)));
  };
  return {
    read: paths(lease["fs.read"], () => deniedForms(options.denyPaths ?? [])),
    write: paths(
      lease["fs.write"],
      () => deniedForms([...options.denyPaths ?? [], ...options.denyWritePaths ?? []]),
    ),
    net: false,
    env: false,
    run: false,
    ffi: false,
    sys: false,
    import: false,
  };
}
