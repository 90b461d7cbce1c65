/**
 * Lease → Deno permissions: the outer wall. A worker gets `read`/`write` for
 * the static prefixes of its `fs.read`/`fs.write` globs, `net` for the exact
 * hosts of its `net.fetch` globs, and nothing else.
 *
 * @module
 */
import type { Lease } from "../protocol/lease.ts";

/** The `deno.permissions` option of a Worker. */
export interface WorkerPermissions {
  /** Readable paths, or false. */
  read: string[] | false;
  /** Writable paths, or false. */
  write: string[] | false;
  /** Reachable `host[:port]`s, or false. */
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

const GLOB_CHARS = /[*?[\]{}]/;

/**
 * Resolves `.` and `..` in an absolute POSIX path without touching the disk.
 *
 * @param path an absolute path
 * @returns the normalized path
 */
export function normalizePath(path: string): string {
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  return "/" + out.join("/");
}

/**
 * The deepest directory (or file) a path glob cannot leave: every segment
 * before the first one with a glob character.
 *
 * @param glob an absolute path glob, e.g. `/srv/data/**`
 * @returns the static prefix, or undefined for a relative glob
 * @example
 * ```ts
 * import { staticPrefix } from "./permissions.ts";
 * staticPrefix("/srv/data/*.csv"); // "/srv/data"
 * ```
 */
export function staticPrefix(glob: string): string | undefined {
  if (!glob.startsWith("/")) return undefined;
  const segs = glob.split("/");
  const fixed: string[] = [];
  for (const seg of segs) {
    if (GLOB_CHARS.test(seg)) break;
    fixed.push(seg);
  }
  return normalizePath(fixed.join("/") || "/");
}

/**
 * The `host[:port]` a URL glob is confined to, when its scheme and host
 * carry no glob characters.
 *
 * @param glob a URL glob, e.g. `https://api.example.com/**`
 * @returns `host` or `host:port`, or undefined when Deno cannot express it exactly
 */
export function netHost(glob: string): string | undefined {
  const m = /^(https?):\/\/([^/?#]+)/i.exec(glob);
  if (!m || GLOB_CHARS.test(m[2]) || m[2].includes("@")) return undefined;
  try {
    const url = new URL(`${m[1].toLowerCase()}://${m[2]}/`);
    return url.port ? `${url.hostname}:${url.port}` : url.hostname;
  } catch {
    return undefined;
  }
}

function unique(items: Array<string | undefined>): string[] | false {
  const set = [...new Set(items.filter((x): x is string => x !== undefined))];
  return set.length > 0 ? set : false;
}

/**
 * The narrowest Deno permissions that cover a lease.
 *
 * @param lease the effective lease
 * @returns the worker's permissions
 */
export function permissionsForLease(lease: Lease): WorkerPermissions {
  return {
    read: unique((lease["fs.read"] ?? []).map(staticPrefix)),
    write: unique((lease["fs.write"] ?? []).map(staticPrefix)),
    net: unique((lease["net.fetch"] ?? []).map(netHost)),
    env: false,
    run: false,
    ffi: false,
    sys: false,
    import: false,
  };
}
