/**
 * Canonical paths and URLs: the only forms a lease glob is ever matched
 * against (ARCP.md §5.2: "no `..` escapes, no symlink escapes, lower-case
 * host").
 *
 * Two rules for callers:
 *
 * 1. Canonicalize at operation time, every time, and then perform the
 *    operation on the returned string, never on the agent's original. A
 *    symlink made after an earlier check is then seen, and the file that was
 *    checked is the file that is opened.
 * 2. A path or URL that cannot be canonicalized is refused with
 *    `PERMISSION_DENIED`, not `INVALID_REQUEST`: these functions sit on the
 *    authority path of an agent's operation (surfaced to it as a
 *    `tool_result` error), and whatever cannot be proven inside the lease is
 *    denied. `INVALID_REQUEST` stays reserved for malformed client messages.
 *
 * Paths are POSIX. `.` and `..` are resolved lexically first (`/a/link/..`
 * is `/a`, whatever `link` points to), which is also how Deno resolves the
 * paths a worker passes to `Deno.*` (measured on 2.9.6); then the longest
 * existing prefix is replaced by its real path, so no symlink remains in the
 * part that exists. The part that does not exist yet cannot hold a symlink,
 * except a dangling one at its head, which is followed to where it points.
 * Agents cannot make symlinks of their own: `Deno.symlink` needs unscoped
 * read and write permission (measured), which no lease grants.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { parseCanonicalUrl } from "./canonical_url.ts";

/** Symlinks followed through dangling links before giving up (Linux's own limit). */
const MAX_LINK_HOPS = 40;

function denied(message: string, details?: Record<string, unknown>): ArcpError {
  return new ArcpError("PERMISSION_DENIED", message, details);
}

/**
 * Resolves `.`, `..` and repeated or trailing slashes in an absolute POSIX
 * path without touching the disk. `..` at the root stays at the root.
 *
 * @param path an absolute path
 * @returns the normalized path
 * @example
 * ```ts
 * import { normalizePath } from "./canonical.ts";
 * normalizePath("/srv//data/./x/../y/"); // "/srv/data/y"
 * ```
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

function parentOf(path: string): string {
  return normalizePath(path + "/..");
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function joinPath(dir: string, tail: string[]): string {
  return tail.length === 0 ? dir : normalizePath(`${dir}/${tail.join("/")}`);
}

/** A question the resolver asks of the filesystem. */
type Ask = { op: "realPath" | "readLink" | "isSymlink"; path: string };
/** The filesystem's answer: a value, or what it threw. */
type Answer = { value: string | boolean } | { error: unknown };

function missing(answer: Answer): boolean {
  return "error" in answer &&
    (answer.error instanceof Deno.errors.NotFound ||
      answer.error instanceof Deno.errors.NotADirectory);
}

/**
 * The resolution algorithm, written once as a generator of filesystem
 * questions so that the async and the sync entry points cannot drift apart.
 */
function* resolve(input: string): Generator<Ask, string, Answer> {
  if (input.includes("\0")) throw denied("path must not contain NUL", { path: input });
  if (!input.startsWith("/")) {
    throw denied("path must be absolute", { path: input });
  }
  let pending = normalizePath(input);
  let tail: string[] = [];
  let hops = 0;
  for (;;) {
    const real = yield { op: "realPath", path: pending };
    if ("value" in real) return joinPath(String(real.value), tail);
    if (!missing(real)) {
      // Named as the agent gave it, with no OS message: `pending` may be where
      // a symlink points, and Deno's message repeats that path.
      throw denied(`cannot resolve ${input}: ${(real.error as Error)?.name ?? "error"}`, {
        path: input,
      });
    }
    const link = yield { op: "isSymlink", path: pending };
    if (!("value" in link && link.value === true)) {
      // `pending` does not exist, so it holds no symlink; its parent might.
      tail = [baseOf(pending), ...tail];
      pending = parentOf(pending);
      continue;
    }
    // A dangling symlink: a write through it would land at its target.
    if (++hops > MAX_LINK_HOPS) throw denied("too many symbolic links", { path: input });
    const target = yield { op: "readLink", path: pending };
    const dir = yield { op: "realPath", path: parentOf(pending) };
    if (!("value" in target) || !("value" in dir)) {
      throw denied(`cannot resolve a symbolic link in ${input}`, { path: input });
    }
    const to = String(target.value);
    pending = normalizePath(to.startsWith("/") ? to : `${dir.value}/${to}`);
  }
}

function answerSync(ask: Ask): Answer {
  try {
    if (ask.op === "realPath") return { value: Deno.realPathSync(ask.path) };
    if (ask.op === "readLink") return { value: Deno.readLinkSync(ask.path) };
    return { value: Deno.lstatSync(ask.path).isSymlink };
  } catch (error) {
    return { error };
  }
}

async function answerAsync(ask: Ask): Promise<Answer> {
  try {
    if (ask.op === "realPath") return { value: await Deno.realPath(ask.path) };
    if (ask.op === "readLink") return { value: await Deno.readLink(ask.path) };
    return { value: (await Deno.lstat(ask.path)).isSymlink };
  } catch (error) {
    return { error };
  }
}

/**
 * The canonical form of an absolute path: `.`/`..` resolved lexically, then
 * every symlink in the existing part resolved. Call it when the operation
 * happens and operate on the result.
 *
 * @param path the path an agent wants to use
 * @returns the canonical path
 * @throws {ArcpError} `PERMISSION_DENIED` for a relative path, a NUL byte,
 *   a symlink loop or a path the runtime may not inspect
 * @example
 * ```ts ignore
 * import { canonicalPath } from "./canonical.ts";
 * // With /lease/link -> /etc:
 * await canonicalPath("/lease/link/passwd"); // "/etc/passwd", outside /lease/**
 * await canonicalPath("/lease/link/../x"); // "/lease/x"
 * ```
 */
export async function canonicalPath(path: string): Promise<string> {
  const steps = resolve(path);
  let next = steps.next();
  while (!next.done) next = steps.next(await answerAsync(next.value));
  return next.value;
}

/**
 * {@linkcode canonicalPath} for callers that cannot wait, such as computing
 * a worker's permissions when it is created.
 *
 * @param path an absolute path
 * @returns the canonical path
 * @throws {ArcpError} `PERMISSION_DENIED`, as {@linkcode canonicalPath}
 */
export function canonicalPathSync(path: string): string {
  const steps = resolve(path);
  let next = steps.next();
  while (!next.done) next = steps.next(answerSync(next.value));
  return next.value;
}

/**
 * The canonical form of an http(s) URL: scheme and host lower-cased (IDNs
 * in punycode, IPv4 in dotted decimal), default port dropped, dot segments
 * resolved (`%2e` forms included), escapes of unreserved characters decoded
 * and other escapes upper-cased, fragment dropped. The query is kept.
 *
 * @param url the URL an agent wants to fetch
 * @returns the canonical URL
 * @throws {ArcpError} `PERMISSION_DENIED` for an unparsable URL, a scheme
 *   other than http/https, or userinfo (`user:pass@`)
 * @example
 * ```ts
 * import { canonicalUrl } from "./canonical.ts";
 * canonicalUrl("HTTPS://API.Example.com:443/a/../%7euser/%2f?q=%3d#top");
 * // "https://api.example.com/~user/%2F?q=%3D"
 * ```
 */
export function canonicalUrl(url: string): string {
  const c = parseCanonicalUrl(url);
  if ("refused" in c) throw denied(c.refused, c.details);
  return c.url;
}
