/**
 * The `agent` field grammar of `job.submit` (spec §7.5).
 *
 * @module
 */

const NAME = /^[a-z0-9][a-z0-9._-]*$/;
const VERSION = /^[a-zA-Z0-9.+_-]+$/;

/** The longest agent name or version accepted; longer ones are refused before use in a key. */
export const MAX_AGENT_PART = 128;

/** A parsed agent reference. */
export interface AgentRef {
  /** The agent's name. */
  name: string;
  /** The pinned version, when the reference named one. */
  version?: string;
}

/**
 * Parses `name` or `name@version`.
 *
 * @param text the submit's `agent` field
 * @returns the reference, or undefined when it breaks the grammar
 * @example
 * ```ts
 * import { parseAgentRef } from "./agent_ref.ts";
 * parseAgentRef("echo@1.0.0"); // { name: "echo", version: "1.0.0" }
 * ```
 */
export function parseAgentRef(text: string): AgentRef | undefined {
  const at = text.indexOf("@");
  const name = at < 0 ? text : text.slice(0, at);
  const version = at < 0 ? undefined : text.slice(at + 1);
  if (name.length > MAX_AGENT_PART || !NAME.test(name)) return undefined;
  if (version !== undefined && (version.length > MAX_AGENT_PART || !VERSION.test(version))) {
    return undefined;
  }
  return version === undefined ? { name } : { name, version };
}

/**
 * Whether a string is a valid agent name.
 *
 * @param name the candidate
 * @returns true when it matches the grammar
 */
export function isAgentName(name: string): boolean {
  return name.length <= MAX_AGENT_PART && NAME.test(name);
}

/**
 * Whether a string is a valid agent version.
 *
 * @param version the candidate
 * @returns true when it matches the grammar
 */
export function isAgentVersion(version: string): boolean {
  return version.length <= MAX_AGENT_PART && VERSION.test(version);
}

/**
 * Orders versions: dotted numeric parts compare as numbers, the rest as text,
 * so `10.0.0` sorts after `9.0.0`.
 *
 * @param a one version
 * @param b another
 * @returns negative, zero or positive as for Array.prototype.sort
 */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/);
  const pb = b.split(/[.+-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? "";
    const y = pb[i] ?? "";
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) {
      if (nx !== ny) return nx - ny;
    } else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
