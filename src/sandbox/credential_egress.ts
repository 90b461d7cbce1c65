/**
 * Where a job's provisioned credentials may go: each one's `endpoint` is
 * added to the job's egress globs (so its worker can reach it through the
 * egress proxy, like a `net.fetch` grant), and {@linkcode CredentialWatch}
 * is what the proxy uses to refuse any request that presents a value
 * anywhere else (ARCP §9.8.1: agents present a credential only to its
 * endpoint). Imports no npm module: sandbox processes load it.
 *
 * @module
 */
import { parseCanonicalUrl } from "../lease/canonical_url.ts";
import { matchesAny } from "../lease/glob.ts";

/** How much of a request body is searched for credential values. */
export const BODY_SCAN_BYTES = 64 * 1024;

/** Values shorter than this are not searched for (they would match by chance). */
const MIN_VALUE_LENGTH = 12;

/**
 * The egress globs of a credential's endpoint: the endpoint itself and
 * everything under it.
 *
 * @param endpoint the credential's `endpoint`
 * @returns the globs, or none when the endpoint is not an http(s) URL
 * @example
 * ```ts
 * endpointGlobs("HTTPS://Gateway.internal/v1/"); // ["https://gateway.internal/v1", "https://gateway.internal/v1/**"]
 * ```
 */
export function endpointGlobs(endpoint: string): string[] {
  const c = parseCanonicalUrl(endpoint);
  if ("refused" in c) return [];
  const base = c.url.split(/[?#]/)[0].replace(/\/+$/, "");
  return [base, `${base}/**`];
}

/** A credential as the proxy knows it: the value and where it may go. */
interface Watched {
  id: string;
  value: string;
  globs: string[];
}

/** The credential values of the jobs behind one egress proxy, by the job's slot. */
export class CredentialWatch {
  #bySlot = new Map<number, Watched[]>();

  /**
   * Replaces a job's credentials (an empty list at its end).
   *
   * @param slot the job's slot in the worker
   * @param credentials its current credentials
   */
  set(
    slot: number,
    credentials: ReadonlyArray<{ id: string; value: string; endpoint: string }>,
  ): void {
    const watched = credentials
      .filter((c) => c.value.length >= MIN_VALUE_LENGTH)
      .map((c) => ({ id: c.id, value: c.value, globs: endpointGlobs(c.endpoint) }));
    if (watched.length > 0) this.#bySlot.set(slot, watched);
    else this.#bySlot.delete(slot);
  }

  /** Forgets every job's credentials (the worker was replaced). */
  clear(): void {
    this.#bySlot.clear();
  }

  /**
   * Why a request may not go where it goes, if it presents a credential
   * value (in a header, the URL, or the first {@linkcode BODY_SCAN_BYTES}
   * of its body) to a URL outside that credential's endpoint.
   *
   * @param url the canonical URL the request goes to
   * @param headers its headers
   * @param body its body, if any
   * @returns the refusal, or undefined when the request may go
   */
  refusal(url: string, headers: Headers, body: ArrayBuffer | undefined): string | undefined {
    if (this.#bySlot.size === 0) return undefined;
    const places = placesOf(url, headers, body);
    for (const list of this.#bySlot.values()) {
      for (const c of list) {
        if (matchesAny(c.globs, url)) continue;
        if (places.some((p) => p.includes(c.value))) {
          return `credential ${c.id} may be presented only to its endpoint, not to ${url}`;
        }
      }
    }
    return undefined;
  }

  /**
   * The credential a request presents to its own endpoint, if any: the
   * proxy marks that credential when the upstream refuses it for budget.
   *
   * @param url the canonical URL the request went to
   * @param headers its headers
   * @param body its body, if any
   * @returns the credential's id, or undefined
   */
  presented(url: string, headers: Headers, body: ArrayBuffer | undefined): string | undefined {
    if (this.#bySlot.size === 0) return undefined;
    const places = placesOf(url, headers, body);
    for (const list of this.#bySlot.values()) {
      for (const c of list) {
        if (matchesAny(c.globs, url) && places.some((p) => p.includes(c.value))) return c.id;
      }
    }
    return undefined;
  }
}

/** Where a request may carry a credential value: its URL, its headers, its body's start. */
function placesOf(url: string, headers: Headers, body: ArrayBuffer | undefined): string[] {
  const places: string[] = [url, safeDecode(url)];
  for (const [, v] of headers) places.push(v);
  if (body && body.byteLength > 0) {
    places.push(
      new TextDecoder().decode(new Uint8Array(body, 0, Math.min(body.byteLength, BODY_SCAN_BYTES))),
    );
  }
  return places;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
