/**
 * Plain `fetch` inside an agent's worker, routed through the job's egress
 * proxy. The worker's only `net` permission is the proxy's address (Deno's
 * `net` permission also lets a worker listen, and its `fetch` checks the
 * target's host even when `HTTP_PROXY` is set, measured on 2.9.6), so this
 * is convenience, not a wall: an agent that restores the original `fetch`
 * or speaks HTTP to the proxy itself reaches no more than the proxy allows.
 *
 * @module
 */

/** Headers between this wrapper and the proxy; stripped before anything leaves either. */
export const EGRESS_HEADERS = {
  /** The job's secret: the proxy serves no one else. */
  token: "x-arcp-egress-token",
  /** The URL the agent asked for. */
  target: "x-arcp-egress-target",
  /** The agent's redirect mode (`follow`, `manual`, `error`). */
  redirect: "x-arcp-egress-redirect",
  /** On a refusal: why (the request never left the proxy). */
  refused: "x-arcp-egress-refused",
  /** On a network failure upstream: what failed. */
  failed: "x-arcp-egress-failed",
  /** The URL of the response after the redirects the proxy followed. */
  url: "x-arcp-egress-url",
  /** Present when the proxy followed at least one redirect. */
  redirected: "x-arcp-egress-redirected",
  /** On an upstream's budget refusal of a provisioned credential: that credential's id. */
  budget: "x-arcp-egress-budget",
} as const;

/** Where a worker's egress proxy is and how it knows this job. */
export interface EgressConfig {
  /** The proxy's base URL, e.g. `http://127.0.0.1:41234/`. */
  url: string;
  /** The job's secret for that proxy. */
  token: string;
}

/**
 * Where the worker's bootstrap hears of an upstream's budget refusal the
 * proxy saw (a request that presented a job's credential to its endpoint),
 * so the runtime can end that job's budget, whatever the agent does with
 * the response.
 */
export const upstreamBudget: {
  /** Called with the refused credential's id and the upstream's status. */
  report?: (credentialId: string, status: number) => void;
} = {};

/** Statuses whose responses have no body (Fetch standard "null body status"). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * Replaces `globalThis.fetch` with one that sends every http(s) request
 * through the egress proxy; other schemes (`data:`, `blob:`) keep Deno's
 * own `fetch` and its permission checks.
 *
 * @param config the proxy's address and the job's token
 */
export function routeFetchThrough(config: EgressConfig): void {
  const direct = globalThis.fetch;
  const proxied = async function fetch(
    input: RequestInfo | URL,
    init?: RequestInit,
  ): Promise<Response> {
    const req = new Request(input, init);
    const scheme = new URL(req.url).protocol;
    if (scheme !== "http:" && scheme !== "https:") return await direct(req);
    const headers = new Headers(req.headers);
    headers.set(EGRESS_HEADERS.token, config.token);
    headers.set(EGRESS_HEADERS.target, req.url);
    headers.set(EGRESS_HEADERS.redirect, req.redirect);
    const res = await direct(config.url, {
      method: req.method,
      headers,
      body: req.body,
      signal: req.signal,
      redirect: "manual",
    });
    const refused = res.headers.get(EGRESS_HEADERS.refused);
    const failed = res.headers.get(EGRESS_HEADERS.failed);
    if (refused !== null || failed !== null) {
      await res.body?.cancel();
      if (refused !== null) throw new Deno.errors.NotCapable(decodeURIComponent(refused));
      throw new TypeError(`fetch failed: ${decodeURIComponent(failed!)}`);
    }
    const budget = res.headers.get(EGRESS_HEADERS.budget);
    if (budget !== null) upstreamBudget.report?.(budget, res.status);
    const out = new Headers(res.headers);
    for (const h of Object.values(EGRESS_HEADERS)) out.delete(h);
    const response = new Response(NULL_BODY.has(res.status) ? null : res.body, {
      status: res.status,
      statusText: res.statusText,
      headers: out,
    });
    Object.defineProperties(response, {
      url: { value: res.headers.get(EGRESS_HEADERS.url) ?? req.url },
      redirected: { value: res.headers.has(EGRESS_HEADERS.redirected) },
    });
    return response;
  };
  globalThis.fetch = proxied;
}
