/**
 * A strict reading of one HTTP/1.1 request head that asks for a WebSocket
 * (RFC 6455 §4.2.1), or of a plain `GET` such as a health check, for the
 * gate to answer on the client's own connection. Anything this does not read exactly (another method, path or
 * version, a body, a folded or odd header, a missing or malformed
 * WebSocket header, bytes after the head) is left to the HTTP server behind
 * the gate, which answers it as it always did.
 *
 * @module
 */

/** A WebSocket upgrade request, as read. */
export interface UpgradeHead {
  /** The request target, one of the paths asked for. */
  path: string;
  /** The Host header. */
  host: string;
  /** Every header line, in order, as sent. */
  headers: Array<[string, string]>;
  /** Sec-WebSocket-Key. */
  key: string;
}

/** At most this many header lines; a longer head is the HTTP server's to answer. */
const MAX_HEADERS = 64;
/** RFC 9110 `tchar`. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Visible ASCII, space and tab: what a header value may hold here (no obs-text). */
const VALUE = /^[\t\x20-\x7e]*$/;
/** 16 bytes in base64 (RFC 6455 §4.1). */
const KEY = /^[A-Za-z0-9+/]{22}==$/;
/** Headers that must appear exactly once when present. */
const SINGLE = new Set([
  "host",
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
]);

/** A plain `GET` request of one of the paths asked for, as read. */
export interface GetHead {
  /** The request target, one of the paths asked for. */
  path: string;
  /** The Host header. */
  host: string;
  /** Every header line, in order, as sent. */
  headers: Array<[string, string]>;
  /** Whether the client asked to close the connection after the answer (`Connection: close`). */
  close: boolean;
}

/** A head read strictly: its request target and headers (lower-cased names to values). */
interface ParsedHead {
  path: string;
  host: string;
  headers: Array<[string, string]>;
  seen: Map<string, string>;
}

/**
 * Reads `head` as one whole HTTP/1.1 `GET` of one of `paths`, without a body.
 *
 * @param head the bytes read
 * @param paths the request targets asked for
 * @returns the request, or undefined when it is anything else or not read exactly
 */
function parseHead(head: Uint8Array, paths: readonly string[]): ParsedHead | undefined {
  // The head must be whole and alone: a client may send nothing before the answer.
  const n = head.length;
  if (
    n < 4 || head[n - 4] !== 13 || head[n - 3] !== 10 || head[n - 2] !== 13 || head[n - 1] !== 10
  ) return undefined;
  for (let i = 0; i < n; i++) if (head[i] > 0x7e) return undefined;
  const text = String.fromCharCode(...head.subarray(0, n - 4));
  const lines = text.split("\r\n");
  if (lines.length - 1 > MAX_HEADERS) return undefined;
  const request = /^GET (\S+) HTTP\/1\.1$/.exec(lines[0]);
  if (!request || !paths.includes(request[1])) return undefined;
  const headers: Array<[string, string]> = [];
  const seen = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, "");
    // A lone CR or LF, a name with spaces (or a folded line) is not read here.
    if (!TOKEN.test(name) || !VALUE.test(value)) return undefined;
    const lower = name.toLowerCase();
    if (lower === "content-length" || lower === "transfer-encoding") return undefined;
    if (SINGLE.has(lower) && seen.has(lower)) return undefined;
    seen.set(lower, value);
    headers.push([name, value]);
  }
  const host = seen.get("host");
  if (!host) return undefined;
  return { path: request[1], host, headers, seen };
}

/**
 * Reads `head` as a WebSocket upgrade of one of `paths`.
 *
 * @param head the connection's first bytes
 * @param paths the request targets the gate answers itself
 * @returns the request, or undefined when it is anything else or not read exactly
 * @example
 * ```ts
 * import { readUpgradeHead } from "./upgrade_head.ts";
 * const head = new TextEncoder().encode(
 *   "GET /arcp HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
 *     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
 * );
 * readUpgradeHead(head, ["/arcp"])?.key; // "dGhlIHNhbXBsZSBub25jZQ=="
 * ```
 */
export function readUpgradeHead(
  head: Uint8Array,
  paths: readonly string[],
): UpgradeHead | undefined {
  const parsed = parseHead(head, paths);
  if (!parsed) return undefined;
  const { seen } = parsed;
  const key = seen.get("sec-websocket-key");
  if (key === undefined || !KEY.test(key)) return undefined;
  if (seen.get("sec-websocket-version") !== "13") return undefined;
  if (!hasToken(seen.get("upgrade"), "websocket")) return undefined;
  if (!hasToken(seen.get("connection"), "upgrade")) return undefined;
  return { path: parsed.path, host: parsed.host, headers: parsed.headers, key };
}

/**
 * Reads `head` as a plain `GET` of one of `paths`: one whole HTTP/1.1 head,
 * no body, no upgrade asked for.
 *
 * @param head the bytes the connection sent since its last answer
 * @param paths the request targets the gate answers itself
 * @returns the request, or undefined when it is anything else or not read exactly
 * @example
 * ```ts
 * import { readGetHead } from "./upgrade_head.ts";
 * const head = new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
 * readGetHead(head, ["/healthz"])?.close; // false
 * ```
 */
export function readGetHead(head: Uint8Array, paths: readonly string[]): GetHead | undefined {
  const parsed = parseHead(head, paths);
  if (!parsed || parsed.seen.has("upgrade")) return undefined;
  const { path, host, headers, seen } = parsed;
  return { path, host, headers, close: hasToken(seen.get("connection"), "close") };
}

/** Whether a comma-separated header value names `token`, in any case. */
function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  return value.split(",").some((part) => part.trim().toLowerCase() === token);
}

/** RFC 6455 §1.3's GUID, appended to the client's key. */
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * The Sec-WebSocket-Accept value for a client's key.
 *
 * @param key Sec-WebSocket-Key as sent
 * @returns base64 of SHA-1 of the key and the GUID
 * @example
 * ```ts
 * import { acceptKey } from "./upgrade_head.ts";
 * await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
 * ```
 */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    new TextEncoder().encode(key + WEBSOCKET_GUID),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}
