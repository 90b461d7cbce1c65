/**
 * The runtime's own listeners, which no agent may reach: a job that could
 * connect to them could open sessions (or fail hellos) as a local client.
 * A listener is known by its port and the address it is bound to; every
 * name that reaches it from this machine counts: the loopback range,
 * `localhost`, `0.0.0.0`, `::1`, IPv4-mapped IPv6 and, for a listener bound
 * to every interface, the machine's addresses and host name.
 *
 * Names that resolve to this machine through DNS (`*.localtest.me`, an
 * `/etc/hosts` entry) are not recognised here; an egress proxy that checks
 * the address it connects to is what closes that route.
 *
 * @module
 */

/** An address the runtime listens on. */
export interface Listener {
  /** The bound host name or address, e.g. `127.0.0.1`, `0.0.0.0`, `::`. */
  hostname: string;
  /** The bound port. */
  port: number;
}

const WILDCARD_BINDS = new Set(["0.0.0.0", "::", "[::]", ""]);

/**
 * Every `host:port` (in Deno's `--deny-net` syntax) that reaches a listener
 * from this machine, for the names Deno can express exactly.
 *
 * @param listeners where the runtime listens
 * @returns `host:port` entries, IPv6 in brackets
 */
export function listenerHosts(listeners: readonly Listener[]): string[] {
  const out = new Set<string>();
  for (const { hostname, port } of listeners) {
    for (const host of localNames(hostname)) out.add(`${bracket(host)}:${port}`);
  }
  return [...out];
}

/**
 * The listener a URL glob's authority names, if any: same port, and a host
 * that reaches this machine.
 *
 * @param glob a `net.fetch` URL glob
 * @param listeners where the runtime listens
 * @returns the listener it would reach, or undefined
 */
export function listenerNamedBy(
  glob: string,
  listeners: readonly Listener[],
): Listener | undefined {
  const m = /^(https?):\/\/([^/?#]+)/i.exec(glob);
  if (!m) return undefined;
  let url: URL;
  try {
    url = new URL(`${m[1]}://${m[2].replace(/^.*@/, "").replace(/^\*\./, "wildcard.")}/`);
  } catch {
    return undefined;
  }
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return listeners.find((l) => l.port === port && reachesThisMachine(host, l.hostname));
}

/** Whether a host name or address reaches a listener bound to `bound`. */
function reachesThisMachine(host: string, bound: string): boolean {
  if (isLoopback(host)) return true;
  return localNames(bound).includes(host);
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost") || host.startsWith("127.") ||
    host === "0.0.0.0" || host === "::1" || host === "::" ||
    /^::ffff:(7f[0-9a-f]{2}:|127\.|0:0$|0\.0\.0\.0$)/.test(host);
}

/** The names Deno can be told to deny for a bound address. */
function localNames(bound: string): string[] {
  const names = ["127.0.0.1", "localhost", "::1", "0.0.0.0", "::", "::ffff:7f00:1"];
  if (bound && !names.includes(bound)) names.push(bound.replace(/^\[|\]$/g, ""));
  if (WILDCARD_BINDS.has(bound)) names.push(...machineAddresses());
  return names;
}

/** This machine's interface addresses and host name, as far as this process may know them. */
function machineAddresses(): string[] {
  const out: string[] = [];
  try {
    out.push(...Deno.networkInterfaces().map((i) => i.address.replace(/%.*$/, "")));
  } catch {
    // Without --allow-sys the loopback names are all this process can name.
  }
  try {
    out.push(Deno.hostname());
  } catch {
    // as above
  }
  return out;
}

function bracket(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
