/**
 * A stand-in for an OpenAI-compatible model gateway (LiteLLM's proxy, a
 * vendor endpoint), served for real on a loopback port with that API's
 * wire format: `POST /v1/chat/completions` with `Authorization: Bearer`,
 * `stream: true` answered as server-sent `chat.completion.chunk` events
 * ending in `data: [DONE]`, a final usage chunk when
 * `stream_options.include_usage` is set (with `usage.cost` in USD), and
 * OpenAI-shaped error bodies. Keys are valid while the runtime's
 * provisioner holds them; per-key spend is tracked
 * against `maxBudgetUsd` and refused LiteLLM's way once exceeded. Model
 * names pick the behaviour: `budget-402`, `budget-429`, `slow` (chunks
 * until the client hangs up) and `drop` (the connection is cut mid-stream).
 *
 * @module
 */
import { LocalProvisioner, type RuntimeOptions } from "../../mod.ts";
import { startServer, type TestServer } from "../../testing/server.ts";
import { connect, type WsClient } from "../../testing/ws_client.ts";
import type { CredentialRequest } from "../../src/credentials/credentials.ts";

/** A LocalProvisioner that remembers what it issued and revoked, per job. */
export class RecordingProvisioner extends LocalProvisioner {
  /** Every issue: the job, its handle, the value and the request's scope. */
  readonly issued: Array<{ jobId: string; handle: string; value: string; models?: string[] }> = [];
  /** Handles revoked so far. */
  readonly revoked: Set<string> = new Set();

  /**
   * Mints and records a token.
   *
   * @param request the job's scope
   * @returns the credential
   */
  override async issue(request: CredentialRequest): ReturnType<LocalProvisioner["issue"]> {
    const cred = await super.issue(request);
    this.issued.push({
      jobId: request.jobId,
      handle: request.handle,
      value: cred.value,
      models: request.lease["model.use"] ? [...request.lease["model.use"]] : undefined,
    });
    return cred;
  }

  /**
   * Revokes and records.
   *
   * @param handle the handle
   * @returns resolves once revoked
   */
  override async revoke(handle: string): Promise<void> {
    await super.revoke(handle);
    this.revoked.add(handle);
  }

  /**
   * The values issued for a job.
   *
   * @param jobId the job
   * @returns its values, oldest first
   */
  valuesOf(jobId: string): string[] {
    return this.issued.filter((i) => i.jobId === jobId).map((i) => i.value);
  }
}

/** One chat request the gateway received. */
export interface ModelCall {
  /** The path asked for. */
  path: string;
  /** The bearer token presented. */
  key: string;
  /** The request body. */
  // deno-lint-ignore no-explicit-any
  body: any;
  /** The status answered. */
  status: number;
  /** The `traceparent` header, as sent. */
  traceparent: string | null;
}

/** The stand-in gateway. */
export class ModelGateway {
  /** Every request, in order. */
  readonly calls: ModelCall[] = [];
  /** Models the keys may use (LiteLLM's key `models`); any when empty. */
  allowedModels: string[] = [];
  /** Spend a key may reach before it is refused for budget (USD). */
  maxBudgetUsd = Infinity;
  /** USD charged per token. */
  pricePerToken = 0.001;
  #spend = new Map<string, number>();
  /** Whether a key is live: the provisioner's `isActive`, set once it exists. */
  isActive: (key: string) => boolean = () => false;
  #server: Deno.HttpServer<Deno.NetAddr>;

  /**
   * Starts a gateway on a free loopback port.
   */
  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) => this.#handle(req),
    );
  }

  /** `http://127.0.0.1:PORT/v1`, what credentials name as their endpoint. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/v1`;
  }

  async #handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const key = (req.headers.get("authorization") ?? "").replace(/^Bearer /, "");
    // deno-lint-ignore no-explicit-any
    let body: any;
    try {
      body = await req.json();
    } catch {
      body = undefined;
    }
    const call: ModelCall = {
      path,
      key,
      body,
      status: 0,
      traceparent: req.headers.get("traceparent"),
    };
    this.calls.push(call);
    const error = (status: number, message: string, type: string) => {
      call.status = status;
      return Response.json({ error: { message, type, param: null, code: String(status) } }, {
        status,
      });
    };
    if (path !== "/v1/chat/completions" || req.method !== "POST") {
      return error(404, "no such route", "not_found");
    }
    if (!this.isActive(key)) {
      return error(401, "Authentication Error, invalid or revoked key", "auth_error");
    }
    const model = String(body?.model ?? "");
    if (model === "budget-402") return error(402, "Payment required: budget spent", "billing");
    if (model === "budget-429") {
      return error(429, "Budget has been exceeded! Max budget: 0.0", "budget_exceeded");
    }
    if (this.allowedModels.length > 0 && !this.allowedModels.includes(model)) {
      return error(
        401,
        `key not allowed to access model. This key can only access models=${this.allowedModels}. Tried to access ${model}`,
        "key_model_access_denied",
      );
    }
    const spent = this.#spend.get(key) ?? 0;
    if (spent >= this.maxBudgetUsd) {
      return error(
        400,
        `Budget has been exceeded! Current cost: ${spent}, Max budget: ${this.maxBudgetUsd}`,
        "budget_exceeded",
      );
    }
    call.status = 200;
    const prompt = JSON.stringify(body?.messages ?? []).length;
    const words = model === "slow" || model === "drop"
      ? Array.from({ length: 1000 }, (_, i) => `w${i} `)
      : ["Hello", ", ", "world", "!"];
    const usage = {
      prompt_tokens: prompt,
      completion_tokens: words.length,
      total_tokens: prompt + words.length,
      cost: (prompt + words.length) * this.pricePerToken,
    };
    this.#spend.set(key, spent + usage.cost);
    const id = `chatcmpl-${crypto.randomUUID()}`;
    const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
      id,
      object: "chat.completion.chunk",
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    });
    const encoder = new TextEncoder();
    const sse = (data: unknown) =>
      encoder.encode(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
    const includeUsage = body?.stream_options?.include_usage === true;
    let i = -1;
    const stream = new ReadableStream<Uint8Array>({
      pull: async (ctrl) => {
        if (model === "slow") await new Promise((r) => setTimeout(r, 20));
        if (i === -1) ctrl.enqueue(sse(chunk({ role: "assistant", content: "" }, null)));
        else if (i < words.length) {
          if (model === "drop" && i === 3) return ctrl.error(new Error("connection dropped"));
          ctrl.enqueue(sse(chunk({ content: words[i] }, null)));
        } else if (i === words.length) ctrl.enqueue(sse(chunk({}, "stop")));
        else if (i === words.length + 1 && includeUsage) {
          ctrl.enqueue(sse({ id, object: "chat.completion.chunk", model, choices: [], usage }));
        } else {
          ctrl.enqueue(sse("[DONE]"));
          ctrl.close();
        }
        i++;
      },
    });
    return new Response(stream, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    });
  }

  /** Stops the gateway. */
  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  /** Same as close, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The model agents' fixtures folder. */
const MODEL_AGENTS = new URL("../fixtures/model_agents", import.meta.url).pathname;

/** A real runtime whose credentials are live keys of a {@linkcode ModelGateway}, and a client. */
export interface GatewayRig {
  /** The runtime. */
  server: TestServer;
  /** The gateway stand-in. */
  gw: ModelGateway;
  /** The provisioner issuing the gateway's keys. */
  prov: RecordingProvisioner;
  /** A client of the runtime, hello done. */
  c: WsClient;
  /** Closes the client, the runtime and the gateway. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts a runtime over the model agents' fixtures whose credentials are
 * live keys of a fresh gateway stand-in.
 *
 * @param options more runtime options
 * @returns the rig, to dispose with `await using`
 */
export async function gatewayRig(options: Partial<RuntimeOptions> = {}): Promise<GatewayRig> {
  const gw = new ModelGateway();
  const prov = new RecordingProvisioner(gw.endpoint);
  gw.isActive = (key) => prov.isActive(key);
  const server = await startServer({
    ...options,
    agentsDir: MODEL_AGENTS,
    credentials: { provisioner: prov, allowInsecure: true },
  });
  const c = await connect(server.url);
  return {
    server,
    gw,
    prov,
    c,
    async [Symbol.asyncDispose]() {
      await c.close();
      await server.close(true);
      await gw.close();
    },
  };
}
