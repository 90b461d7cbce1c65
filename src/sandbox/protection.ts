/**
 * What no agent reaches, whatever its lease: the runtime-protected paths
 * and the runtime's own listeners. A lease whose grants would overlap
 * either is refused when it is submitted (or delegated), naming the
 * pattern, the protected thing and why, so the client can narrow it. The
 * refusal matters because Deno cannot carve a denied path out of a
 * granted directory: without it the worker would get no grant at all for
 * that pattern and fail later with Deno's "run again with --allow-read".
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import type { Lease } from "../protocol/lease.ts";
import { canonicalPathSync } from "../lease/canonical.ts";
import { isWithin, protectedOverlapping, type ProtectedPath } from "../lease/protected_path.ts";
import { staticPrefix } from "./permissions.ts";
import { type Listener, listenerNamedBy } from "./protected_listeners.ts";

/** The runtime's protected paths and listeners. */
export interface Protection {
  /** Paths no lease reaches, under every name they go by. */
  paths: readonly ProtectedPath[];
  /** Where the runtime listens; empty when it does not know (stdio, or an embedder that did not say). */
  listeners: readonly Listener[];
}

/**
 * Refuses a lease that would reach protected state: an `fs.read` /
 * `fs.write` glob whose granted directory (its static prefix, as given or
 * with symlinks resolved) contains or lies inside a protected path, or a
 * `net.fetch` glob naming one of the runtime's listeners.
 *
 * @param lease the requested (or delegated) lease
 * @param protection what is protected
 * @throws {ArcpError} `PERMISSION_DENIED` naming the pattern, the protected
 *   path or listener and the reason, with the same in `details`
 * @example
 * ```ts ignore
 * import { checkLeaseProtection } from "./protection.ts";
 * checkLeaseProtection({ "fs.read": ["/tmp/**"] }, protection);
 * // PERMISSION_DENIED: lease fs.read pattern "/tmp/**" would grant /tmp, which
 * // contains /tmp/arcp/data (the runtime's KV store…)
 * ```
 */
export function checkLeaseProtection(lease: Lease, protection: Protection): void {
  for (const ns of ["fs.read", "fs.write"] as const) {
    for (const pattern of lease[ns] ?? []) {
      const grant = staticPrefix(pattern);
      // A non-canonical prefix grants nothing and matches nothing.
      if (grant === undefined) continue;
      for (const name of namesOf(grant)) {
        const hit = protectedOverlapping(name, ns, protection.paths);
        if (!hit) continue;
        const how = name === hit.path
          ? "is"
          : isWithin(hit.path, name)
          ? "contains"
          : "lies inside";
        throw new ArcpError(
          "PERMISSION_DENIED",
          `lease ${ns} pattern ${JSON.stringify(pattern)} would grant ${name}, which ${how} ` +
            `${hit.path} (${hit.reason}); no lease reaches it, so narrow the pattern ` +
            `to a folder of its own`,
          { namespace: ns, pattern, protected_path: hit.path, reason: hit.reason },
        );
      }
    }
  }
  for (const pattern of lease["net.fetch"] ?? []) {
    const hit = listenerNamedBy(pattern, protection.listeners);
    if (!hit) continue;
    throw new ArcpError(
      "PERMISSION_DENIED",
      `lease net.fetch pattern ${JSON.stringify(pattern)} names port ${hit.port} of this ` +
        `machine, where the runtime itself listens; agents may not reach the runtime's listeners`,
      { namespace: "net.fetch", pattern, listener: `${hit.hostname}:${hit.port}` },
    );
  }
}

/** A granted directory as written and with symlinks resolved. */
function namesOf(grant: string): string[] {
  try {
    return [...new Set([grant, canonicalPathSync(grant)])];
  } catch {
    return [grant];
  }
}
