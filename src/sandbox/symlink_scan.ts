/**
 * Finds symlinks inside granted directories that lead out of every grant.
 * Deno follows such a link (measured on Deno 2.9.6), so a worker granted
 * `/lease` could read `/lease/link/passwd` when `link -> /etc`; the runtime
 * therefore refuses to start a job whose grants contain one. Agents cannot
 * create symlinks themselves: Deno requires unscoped read and write for that.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";

/** Entries one job start may inspect before giving up (and refusing). */
export const DEFAULT_SCAN_LIMIT = 50_000;

function inside(path: string, roots: readonly string[]): boolean {
  return roots.some((r) => r === "/" || path === r || path.startsWith(r + "/"));
}

/**
 * Checks that no symlink under `roots` resolves outside all of `roots`.
 *
 * @param roots granted paths (absolute, normalized)
 * @param limit most directory entries to inspect
 * @throws {ArcpError} `PERMISSION_DENIED` naming the first escaping link, or when the grants are too large to verify
 */
export async function assertNoEscapingSymlinks(
  roots: readonly string[],
  limit = DEFAULT_SCAN_LIMIT,
): Promise<void> {
  let seen = 0;
  const visit = async (path: string): Promise<void> => {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch {
      return; // missing paths hold nothing to follow
    }
    if (++seen > limit) {
      throw new ArcpError(
        "PERMISSION_DENIED",
        `the lease grants more than ${limit} filesystem entries, too many to check for symlinks that lead out of it; lease a narrower path`,
      );
    }
    if (info.isSymlink) {
      let target: string;
      try {
        target = await Deno.realPath(path);
      } catch {
        return; // dangling: following it reaches nothing
      }
      if (!inside(target, roots)) {
        throw new ArcpError(
          "PERMISSION_DENIED",
          // The link alone: where it points is outside the lease, not the submitter's to learn.
          `leased path contains a symlink that leads outside the lease: ${path}`,
        );
      }
      return;
    }
    if (!info.isDirectory) return;
    for await (const entry of Deno.readDir(path)) {
      await visit(path === "/" ? `/${entry.name}` : `${path}/${entry.name}`);
    }
  };
  for (const root of roots) await visit(root);
}
