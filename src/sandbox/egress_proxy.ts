/**
 * One job's egress proxy: the only address its worker may reach. Deno's
 * `net` permission for a `host:port` also lets a worker listen there, so a
 * worker never gets one for a host its lease names; it gets `net` for this
 * proxy alone, which is already bound (so nobody can listen on it either).
 * Every request is checked here, outside the agent, against the job's
 * `net.fetch` globs on its canonical URL (https included: the proxy makes
 * the TLS connection itself, so it sees full URLs), and so is each redirect
 * hop it follows. Requests must carry the job's token, so a worker of
 * another job that reaches this port (through a lease naming it) gets
 * nothing; requests for the proxy's own port are refused. Refusals are
 * HTTP answers the worker's `fetch` turns into `NotCapable` errors.
 *
 * @module
 */
// Only modules without npm imports: sandbox processes run this without npm.
import { timingSafeEqual } from "../protocol/timing_safe.ts";
import { parseCanonicalUrl } from "../lease/canonical_url.ts";
import { matchesAny } from "../lease/glob.ts";
import { listenerNamedBy } from "./protected_listeners.ts";
import { EGRESS_HEADERS, type EgressConfig } from "./worker/egress_fetch.ts";
import { CredentialWatch } from "./credential_egress.ts";
import { BUDGET_STATUSES, isBudgetRefusal } from "./worker/budget_refusal.ts";

/** The longest redirect chain the proxy follows for one request. */
const MAX_REDIRECTS = 20;

/** Statuses followed in `follow` mode (Fetch standard "redirect status"). */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Request headers never forwarded: hop-by-hop, or the proxy's own. */
const DROP_REQUEST = [
  "host",
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  ...Object.values(EGRESS_HEADERS),
];

/**
 * Response headers never passed back: hop-by-hop, and the encoding and
 * length of a body Deno's `fetch` has already decoded.
 */
const DROP_RESPONSE = [
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-encoding",
  "content-length",
  ...Object.values(EGRESS_HEADERS),
];

/** Headers that describe a request body, dropped when a redirect turns the request into a GET. */
const BODY_HEADERS = ["content-type", "content-encoding", "content-language", "content-location"];

function answer(status: number, header: string, message: string): Response {
  return new Response(message, {
    status,
    headers: { [header]: encodeURIComponent(message), "content-type": "text/plain" },
  });
}

/** An egress proxy on a loopback port of its own, for one job. */
export class EgressProxy {
  #server: Deno.HttpServer<Deno.NetAddr>;
  #globs: readonly string[];
  #token = crypto.randomUUID() + crypto.randomUUID();
  /** The provisioned credentials of the jobs behind this proxy: a value goes only to its endpoint. */
  readonly credentials: CredentialWatch = new CredentialWatch();

  /**
   * Binds a fresh loopback port and starts serving; the port is bound when
   * this returns, before any worker exists.
   *
   * @param globs the job's `net.fetch` globs
   */
  constructor(globs: readonly string[]) {
    this.#globs = globs;
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      // Listening on this port must stay impossible for anyone else.
      reusePort: false,
      onListen: () => {},
      onError: (err) => answer(502, EGRESS_HEADERS.failed, String(err)),
    }, (req) => this.#handle(req));
  }

  /** `host:port` of the proxy, in Deno's `net` permission syntax. */
  get address(): string {
    return `127.0.0.1:${this.#server.addr.port}`;
  }

  /** What the worker needs to route its `fetch` here. */
  get config(): EgressConfig {
    return { url: `http://${this.address}/`, token: this.#token };
  }

  /** Stops serving; requests in flight are cut. */
  async close(): Promise<void> {
    await this.#server.shutdown().catch(() => {});
  }

  /** The canonical URL if the lease allows it, else why not. */
  #check(url: string): { url: string } | { refused: string } {
    const c = parseCanonicalUrl(url);
    if ("refused" in c) return c;
    if (listenerNamedBy(c.url, [this.#server.addr])) {
      return { refused: "the egress proxy does not fetch from itself" };
    }
    if (!matchesAny(this.#globs, c.url)) {
      return { refused: `net.fetch ${JSON.stringify(c.url)} is not granted by the lease` };
    }
    return c;
  }

  async #handle(req: Request): Promise<Response> {
    const token = req.headers.get(EGRESS_HEADERS.token) ?? "";
    if (!timingSafeEqual(token, this.#token)) {
      return answer(407, EGRESS_HEADERS.refused, "egress proxy: not this job's token");
    }
    if (req.headers.has("upgrade")) {
      return answer(
        403,
        EGRESS_HEADERS.refused,
        "egress proxy: connection upgrades (WebSocket) are not proxied",
      );
    }
    const target = req.headers.get(EGRESS_HEADERS.target) ?? "";
    const mode = req.headers.get(EGRESS_HEADERS.redirect) ?? "follow";
    const first = this.#check(target);
    if ("refused" in first) return answer(403, EGRESS_HEADERS.refused, first.refused);
    const headers = new Headers(req.headers);
    for (const h of DROP_REQUEST) headers.delete(h);
    // Buffered, so a 307/308 can replay it; in a sandbox process this memory is the job's own.
    let body: ArrayBuffer | undefined = req.body ? await req.arrayBuffer() : undefined;
    let method = req.method;
    let url = first.url;
    for (let hop = 0;; hop++) {
      // Every hop: a redirect must not carry a credential away from its endpoint either.
      const leak = this.credentials.refusal(url, headers, body);
      if (leak) {
        return answer(403, EGRESS_HEADERS.refused, hop > 0 ? `redirect: ${leak}` : leak);
      }
      let res: Response;
      try {
        // Not req.signal: Deno 2.9 aborts it once a response is sent, and warns about it. A
        // worker that hangs up cancels the relayed body instead; the process dies with the job.
        res = await fetch(url, { method, headers, body, redirect: "manual" });
      } catch (err) {
        return answer(502, EGRESS_HEADERS.failed, `${url}: ${(err as Error).message}`);
      }
      const location = res.headers.get("location");
      if (mode === "manual" || !REDIRECT_STATUSES.has(res.status) || location === null) {
        const presented = BUDGET_STATUSES.has(res.status)
          ? this.credentials.presented(url, headers, body)
          : undefined;
        return presented
          ? await this.#relayRefusal(res, url, hop > 0, presented)
          : this.#relay(res, url, hop > 0);
      }
      await res.body?.cancel();
      if (mode === "error") {
        return answer(
          502,
          EGRESS_HEADERS.failed,
          `redirected (${res.status}) while redirect mode is "error"`,
        );
      }
      if (hop >= MAX_REDIRECTS) {
        return answer(502, EGRESS_HEADERS.failed, `more than ${MAX_REDIRECTS} redirects`);
      }
      const next = URL.canParse(location, url)
        ? this.#check(new URL(location, url).href)
        : { refused: "unparsable location" };
      if ("refused" in next) {
        return answer(403, EGRESS_HEADERS.refused, `redirect from ${url}: ${next.refused}`);
      }
      if (
        ((res.status === 301 || res.status === 302) && method === "POST") ||
        (res.status === 303 && method !== "GET" && method !== "HEAD")
      ) {
        method = "GET";
        body = undefined;
        for (const h of BODY_HEADERS) headers.delete(h);
      }
      if (new URL(next.url).origin !== new URL(url).origin) headers.delete("authorization");
      url = next.url;
    }
  }

  /**
   * Relays an error answer to a request that presented a credential: read
   * whole (error bodies are small) to tell a budget refusal, which is then
   * marked for the worker with the credential's id.
   */
  async #relayRefusal(
    res: Response,
    url: string,
    redirected: boolean,
    credentialId: string,
  ): Promise<Response> {
    const text = await res.text().catch(() => "");
    const relayed = this.#relay(
      new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers }),
      url,
      redirected,
    );
    if (isBudgetRefusal(res.status, text)) relayed.headers.set(EGRESS_HEADERS.budget, credentialId);
    return relayed;
  }

  #relay(res: Response, url: string, redirected: boolean): Response {
    const headers = new Headers(res.headers);
    for (const h of DROP_RESPONSE) headers.delete(h);
    headers.set(EGRESS_HEADERS.url, url);
    if (redirected) headers.set(EGRESS_HEADERS.redirected, "1");
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }
}
