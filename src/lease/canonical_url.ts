/**
 * Canonical URLs without the error type: the one definition both the inner
 * wall (`canonical.ts`, which throws `PERMISSION_DENIED`) and the egress
 * proxy use. It imports nothing, so a sandbox process, which runs without
 * npm, can load it.
 *
 * @module
 */

/** RFC 3986 unreserved characters, which percent-encoding must not hide. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

function normalizeEscapes(text: string): string {
  return text.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
}

/** A canonical URL, or why there is none. */
export type CanonicalUrl =
  | { url: string }
  | { refused: string; details?: Record<string, unknown> };

/**
 * The canonical form of an http(s) URL: scheme and host lower-cased (IDNs
 * in punycode, IPv4 in dotted decimal), default port dropped, dot segments
 * resolved (`%2e` forms included), escapes of unreserved characters decoded
 * and other escapes upper-cased, fragment dropped. The query is kept.
 *
 * @param url the URL an agent wants to fetch
 * @returns the canonical URL, or why it is refused: unparsable, a scheme
 *   other than http/https, or userinfo (`user:pass@`)
 * @example
 * ```ts
 * import { parseCanonicalUrl } from "./canonical_url.ts";
 * parseCanonicalUrl("HTTPS://API.Example.com:443/a/../%7euser/");
 * // { url: "https://api.example.com/~user/" }
 * ```
 */
export function parseCanonicalUrl(url: string): CanonicalUrl {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // No details: an unparsable string might still carry credentials.
    return { refused: "not an absolute URL" };
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return {
      refused: "only http and https URLs may be fetched",
      details: { scheme: parsed.protocol },
    };
  }
  if (parsed.username !== "" || parsed.password !== "") {
    return {
      refused: "URLs with userinfo are refused",
      details: { url: `${parsed.protocol}//${parsed.host}` },
    };
  }
  const path = normalizeEscapes(parsed.pathname);
  const query = normalizeEscapes(parsed.search);
  return { url: `${parsed.protocol}//${parsed.host}${path}${query}` };
}
