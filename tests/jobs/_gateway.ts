/**
 * A stand-in for a LiteLLM gateway's key-management API, served for real on
 * a loopback port: `POST /key/generate` and `POST /key/delete`, the admin
 * key checked on both. It records every call, tracks which virtual keys are
 * live (by alias), and can be told to fail deletes (transient 503 or
 * permanent 400), to refuse to issue, to answer slowly, or to be down (its
 * listener closed, so connections are refused).
 *
 * @module
 */

/** A monotonic counter shared by the gateway and tests, to order events across both. */
let ticks = 0;

/**
 * The next tick of the shared clock (strictly increasing within the process).
 *
 * @returns the tick
 */
export function tick(): number {
  return ++ticks;
}

/** One request the gateway received. */
export interface GatewayCall {
  /** `/key/generate`, `/key/delete`, or anything else that was asked. */
  path: string;
  /** The parsed JSON body (undefined when it was not JSON). */
  // deno-lint-ignore no-explicit-any
  body: any;
  /** The `Authorization` header, as sent. */
  auth: string | null;
  /** The `traceparent` header, as sent. */
  traceparent: string | null;
  /** The HTTP status the gateway answered. */
  status: number;
  /** {@linkcode tick} when the request arrived. */
  at: number;
  /** `Date.now()` when the request arrived. */
  ms: number;
}

/** A live virtual key. */
export interface GatewayKey {
  /** The secret (`sk-virt-...`). */
  key: string;
  /** The alias it was generated under. */
  alias: string;
  /** The generate request's body. */
  // deno-lint-ignore no-explicit-any
  request: any;
}

/** The stand-in gateway. */
export class FakeGateway {
  /** The admin key it accepts. */
  readonly adminKey: string;
  /** Every call, in arrival order. */
  readonly calls: GatewayCall[] = [];
  /** Live keys by alias. */
  readonly live: Map<string, GatewayKey> = new Map();
  /** Every key value ever issued. */
  readonly issued: string[] = [];
  /** Answer `/key/generate` only after this many ms. */
  generateDelayMs = 0;
  /**
   * Awaited after a call is recorded and before it is answered (the caller
   * is then blocked on this very request): lets a test look at the
   * runtime's state at a precise point.
   */
  onCall: ((call: GatewayCall) => void | Promise<void>) | undefined;
  #failDeletes: Array<number> = [];
  #failGenerates: Array<number> = [];
  #aliases: string[] = [];
  #port = 0;
  #server: Deno.HttpServer | undefined;
  #ac: AbortController | undefined;

  private constructor(adminKey: string) {
    this.adminKey = adminKey;
  }

  /**
   * Starts a gateway on a free loopback port.
   *
   * @param adminKey the admin key it accepts
   * @returns the running gateway
   */
  static async start(adminKey = "sk-admin-test-master"): Promise<FakeGateway> {
    const gw = new FakeGateway(adminKey);
    await gw.#listen(0);
    return gw;
  }

  /** `http://127.0.0.1:PORT`, the admin API base. */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Whether the gateway is down (listener closed). */
  get down(): boolean {
    return this.#server === undefined;
  }

  #listen(port: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#ac = new AbortController();
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port,
      signal: this.#ac.signal,
      onListen: ({ port }) => {
        this.#port = port;
        resolve();
      },
    }, (req) => this.#handle(req));
    return promise;
  }

  /**
   * Takes the gateway down (connections refused) or brings it back on the same port.
   *
   * @param down true to stop listening, false to listen again
   * @returns resolves once the listener is closed or open
   */
  async setDown(down: boolean): Promise<void> {
    if (down && this.#server) {
      const server = this.#server;
      this.#server = undefined;
      this.#ac!.abort();
      await server.finished;
    } else if (!down && !this.#server) {
      await this.#listen(this.#port);
    }
  }

  /**
   * Makes the next `n` `/key/delete` calls fail with `status` (the key stays live).
   *
   * @param n how many
   * @param status 503 (transient) or 400 (permanent), say
   */
  failDeletes(n: number, status: number): void {
    for (let i = 0; i < n; i++) this.#failDeletes.push(status);
  }

  /**
   * Makes the next `n` `/key/generate` calls fail with `status` (no key issued).
   *
   * @param n how many
   * @param status the HTTP status
   */
  failGenerates(n: number, status: number): void {
    for (let i = 0; i < n; i++) this.#failGenerates.push(status);
  }

  /**
   * The calls to one path.
   *
   * @param path `/key/generate` or `/key/delete`
   * @returns them, in order
   */
  callsTo(path: string): GatewayCall[] {
    return this.calls.filter((c) => c.path === path);
  }

  /**
   * The generate calls made for a job (by `metadata.arcp_job_id`).
   *
   * @param jobId the job
   * @returns them, in order
   */
  generatesFor(jobId: string): GatewayCall[] {
    return this.callsTo("/key/generate").filter((c) => c.body?.metadata?.arcp_job_id === jobId);
  }

  /**
   * The delete calls naming an alias.
   *
   * @param alias the key alias
   * @returns them, in order
   */
  deletesOf(alias: string): GatewayCall[] {
    return this.callsTo("/key/delete").filter((c) => c.body?.key_aliases?.includes(alias));
  }

  /**
   * The alias a key value was generated under.
   *
   * @param key the secret
   * @returns its alias, or undefined
   */
  aliasOfKey(key: string): string | undefined {
    const i = this.issued.indexOf(key);
    return i < 0 ? undefined : this.#aliases[i];
  }

  async #handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    let body: unknown;
    try {
      body = await req.json();
    } catch {
      body = undefined;
    }
    const call: GatewayCall = {
      path,
      body,
      auth: req.headers.get("authorization"),
      traceparent: req.headers.get("traceparent"),
      status: 0,
      at: tick(),
      ms: Date.now(),
    };
    this.calls.push(call);
    await this.onCall?.(call);
    const answer = (status: number, json: unknown) => {
      call.status = status;
      return Response.json(json, { status });
    };
    if (req.method !== "POST") return answer(405, { error: "method not allowed" });
    if (call.auth !== `Bearer ${this.adminKey}`) {
      return answer(401, { error: { message: "Authentication Error, invalid admin key" } });
    }
    // deno-lint-ignore no-explicit-any
    const b = body as any;
    if (path === "/key/generate") {
      if (this.generateDelayMs > 0) await new Promise((r) => setTimeout(r, this.generateDelayMs));
      const fail = this.#failGenerates.shift();
      if (fail) return answer(fail, { error: { message: "generate failed (test)" } });
      if (typeof b?.key_alias !== "string") return answer(400, { error: "key_alias required" });
      if (this.live.has(b.key_alias)) return answer(400, { error: "key_alias already exists" });
      const key = `sk-virt-${crypto.randomUUID().replaceAll("-", "")}`;
      this.live.set(b.key_alias, { key, alias: b.key_alias, request: b });
      this.issued.push(key);
      this.#aliases.push(b.key_alias);
      return answer(200, { key, key_alias: b.key_alias, expires: null });
    }
    if (path === "/key/delete") {
      const fail = this.#failDeletes.shift();
      if (fail) return answer(fail, { error: { message: "delete failed (test)" } });
      const aliases: string[] = Array.isArray(b?.key_aliases) ? b.key_aliases : [];
      const found = aliases.filter((a) => this.live.has(a));
      if (found.length === 0) return answer(404, { error: { message: "key not found" } });
      for (const a of found) this.live.delete(a);
      return answer(200, { deleted_keys: found });
    }
    return answer(404, { error: "no such route" });
  }

  /**
   * Polls until `pred` holds.
   *
   * @param pred the condition
   * @param ms how long to wait
   * @param what description for the timeout error
   * @returns resolves once it holds
   */
  async until(pred: () => boolean, ms = 10_000, what = "gateway condition"): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${what}; calls: ${
            JSON.stringify(this.calls.map((c) => [c.path, c.status, c.body?.key_aliases]))
          }`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Stops the gateway. */
  async close(): Promise<void> {
    await this.setDown(true);
  }

  /** Same as close, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
