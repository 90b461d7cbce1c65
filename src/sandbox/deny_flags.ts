/**
 * The `--deny-*` flags of a sandbox host process: the outer wall around
 * everything its workers might try, whatever their leases. A worker cannot
 * be granted anything its process is denied (Deno refuses to create it:
 * "Can't escalate parent thread permissions"), which is why leases that
 * would need it are refused at submit instead.
 *
 * @module
 */
import type { Protection } from "./protection.ts";
import { listenerHosts } from "./protected_listeners.ts";

/**
 * The deny flags for a host process.
 *
 * @param protection the runtime's protected paths and listeners
 * @param extra more paths to deny read and write
 * @returns `--deny-read=…`, `--deny-write=…` and `--deny-net=…` flags
 * @throws {Error} for a path with a comma, which Deno 2.9 cannot take in a flag
 */
export function denyFlags(protection?: Protection, extra: readonly string[] = []): string[] {
  const read = new Set(extra);
  const write = new Set(extra);
  for (const p of protection?.paths ?? []) {
    write.add(p.path);
    if (p.access === "read-write") read.add(p.path);
  }
  for (const p of [...read, ...write]) {
    if (p.includes(",")) {
      throw new Error(`cannot deny ${JSON.stringify(p)} to sandbox hosts: Deno flags split on ","`);
    }
  }
  const net = listenerHosts(protection?.listeners ?? []);
  return [
    ...[...read].map((p) => `--deny-read=${p}`),
    ...[...write].map((p) => `--deny-write=${p}`),
    ...(net.length > 0 ? [`--deny-net=${net.join(",")}`] : []),
  ];
}
