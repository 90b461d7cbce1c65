/**
 * Runtime-protected paths: the runtime's own state and code, which no lease
 * reaches whatever it says. Both walls use these helpers: the inner wall
 * (`ctx.fs` in the guard) refuses a canonical path inside one, and the
 * sandbox refuses at submit a lease whose Deno grant would overlap one.
 *
 * @module
 */

/**
 * What a protected path is shielded from: secrets are neither read nor
 * written; code may be read (it is no secret) but never written.
 */
export type ProtectedAccess = "read-write" | "write";

/** One path no lease reaches, and why. */
export interface ProtectedPath {
  /** Absolute, normalized path (the runtime lists each name it goes by). */
  path: string;
  /** Which lease namespaces it is shielded from. */
  access: ProtectedAccess;
  /** Why, in words a client can act on. */
  reason: string;
}

/**
 * Whether a protected path is shielded from a lease namespace.
 *
 * @param p the protected path
 * @param ns `fs.read` or `fs.write`
 * @returns true when that namespace may not reach it
 */
export function shields(p: ProtectedPath, ns: string): boolean {
  return ns === "fs.write" || (ns === "fs.read" && p.access === "read-write");
}

/**
 * Whether `path` is `dir` or lies inside it.
 *
 * @param path an absolute path
 * @param dir an absolute directory
 * @returns true when `path` is within `dir`
 */
export function isWithin(path: string, dir: string): boolean {
  return path === dir || dir === "/" || path.startsWith(dir.endsWith("/") ? dir : dir + "/");
}

/**
 * The protected path a canonical target lies inside, for one namespace.
 *
 * @param path the canonical path an agent wants to use
 * @param ns `fs.read` or `fs.write`
 * @param paths the protected paths
 * @returns the protected path that shields it, or undefined
 */
export function protectedContaining(
  path: string,
  ns: string,
  paths: readonly ProtectedPath[],
): ProtectedPath | undefined {
  return paths.find((p) => shields(p, ns) && isWithin(path, p.path));
}

/**
 * The protected path a directory grant would overlap: one the grant
 * contains, or one the grant lies inside. Deno grants directories
 * recursively and cannot take a sub-path back, so either way the grant
 * cannot be given.
 *
 * @param grant an absolute directory Deno would grant
 * @param ns `fs.read` or `fs.write`
 * @param paths the protected paths
 * @returns the first overlapping protected path, or undefined
 */
export function protectedOverlapping(
  grant: string,
  ns: string,
  paths: readonly ProtectedPath[],
): ProtectedPath | undefined {
  return paths.find((p) => shields(p, ns) && (isWithin(grant, p.path) || isWithin(p.path, grant)));
}
