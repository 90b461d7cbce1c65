/**
 * The worker side of provisioned credentials and model calls: each job's
 * credentials as the runtime last sent them, and `ctx.model()`, an
 * OpenAI-compatible streaming chat client bound to one of them.
 *
 * The client is a small one on `fetch` and server-sent events rather than
 * the `openai` npm package: this module is part of the bootstrap every
 * worker loads, and sandbox processes run with `--no-npm` unless an
 * operator allows npm, so the bootstrap cannot depend on one. It speaks
 * the same wire format (`POST {endpoint}/chat/completions`, `stream: true`,
 * `stream_options.include_usage`, `data: [DONE]`), so it works against
 * LiteLLM or a vendor endpoint unchanged. Its requests go through the
 * worker's `fetch`, i.e. the job's egress proxy.
 *
 * @module
 */
import type {
  AgentCredential,
  ChatAnswer,
  ChatOptions,
  ChatRequest,
  ChatUsage,
  ModelClient,
} from "../../agent.ts";
import { LeaseError } from "../../agent.ts";
import type { WireCredential } from "./wire.ts";
import { isBudgetRefusal } from "./budget_refusal.ts";

/** One job's credentials in its worker: replaced whole by each message from the runtime. */
export class SlotCredentials {
  #list: readonly AgentCredential[] = Object.freeze([]);

  /**
   * Replaces the job's credentials.
   *
   * @param credentials the runtime's current list (empty at the job's end)
   */
  set(credentials: readonly WireCredential[]): void {
    this.#list = Object.freeze(credentials.map((c) => deepFreeze(structuredClone(c))));
  }

  /** The current list. */
  get list(): readonly AgentCredential[] {
    return this.#list;
  }

  /**
   * One credential by id or profile; the first without an argument.
   *
   * @param idOrProfile the id or profile
   * @returns it, or undefined
   */
  find(idOrProfile?: string): AgentCredential | undefined {
    if (idOrProfile === undefined) return this.#list[0];
    return this.#list.find((c) => c.id === idOrProfile) ??
      this.#list.find((c) => c.profile === idOrProfile);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** What a job's model client needs of its `ctx`. */
export interface ModelDeps {
  /** The credential to use, looked up at each call (a rotation takes effect at once). */
  credential: () => AgentCredential | undefined;
  /** The runtime's lease check (`model.use`, expiry, budget); resolves to the canonical target. */
  authorize: (ns: string, target: string) => Promise<string>;
  /** Emits an event of the job. */
  emit: (kind: string, body: Record<string, unknown>) => Promise<void>;
  /** Tells the runtime the upstream refused for budget. */
  exhausted: (credentialId: string, message: string) => Promise<unknown>;
  /** The job's signal. */
  signal: AbortSignal;
  /** The job's `traceparent`, sent with every request so the gateway joins the job's trace (§5.9). */
  traceparent: string;
}

/** Longest error body read from an upstream refusal. */
const MAX_ERROR_BODY = 16 * 1024;

/** The upstream's error message, without echoing more than a line of it. */
function upstreamMessage(status: number, body: string): string {
  let message = body;
  try {
    const parsed = JSON.parse(body);
    const m = parsed?.error?.message ?? parsed?.message ?? parsed?.error;
    if (typeof m === "string") message = m;
  } catch {
    // Not JSON: the text itself.
  }
  return `upstream answered ${status}: ${message.slice(0, 300)}`;
}

/** The ARCP code for an upstream refusal that is not about budget. */
function refusalCode(status: number, body: string): string {
  if (status === 401 || status === 403) return "PERMISSION_DENIED";
  if ((status === 400 || status === 404) && /not allowed|not permitted|access/i.test(body)) {
    return "PERMISSION_DENIED";
  }
  return "INTERNAL_ERROR";
}

/** Reads a bounded prefix of a body as text. */
async function readPrefix(res: Response, max: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (text.length < max) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return text.slice(0, max);
}

/**
 * The JSON payloads of a server-sent event stream, until `data: [DONE]`.
 * Rejects when the stream ends without it (a dropped response).
 */
async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += value;
      for (;;) {
        const end = buffer.search(/\r?\n\r?\n/);
        if (end < 0) break;
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const data = event.split(/\r?\n/)
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data === "") continue;
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  throw new LeaseError("INTERNAL_ERROR", "the model's stream ended before data: [DONE]");
}

/**
 * Builds a job's model client.
 *
 * @param deps the job's credential lookup, lease check, events and signal
 * @returns the client
 */
export function makeModelClient(deps: ModelDeps): ModelClient {
  return Object.freeze({
    chat: (request: ChatRequest, options: ChatOptions = {}) => chat(deps, request, options),
  });
}

async function chat(
  deps: ModelDeps,
  request: ChatRequest,
  options: ChatOptions,
): Promise<ChatAnswer> {
  const model = String(request?.model ?? "");
  // Refused before anything is sent: the lease (model.use, expiry, budget) first.
  await deps.authorize("model.use", model);
  const credential = deps.credential();
  const callId = `model_${crypto.randomUUID()}`;
  await deps.emit("tool_call", {
    tool: "model.chat",
    args: { model, messages: request.messages?.length ?? 0, credential_id: credential?.id ?? null },
    call_id: callId,
  });
  try {
    if (!credential) {
      throw new LeaseError(
        "PERMISSION_DENIED",
        "this job has no provisioned credential for models",
      );
    }
    const answer = await stream(deps, credential, request, options);
    const usage = answer.usage;
    if (usage) {
      await deps.emit("metric", {
        name: "tokens.prompt",
        value: usage.prompt_tokens,
        unit: "tokens",
        dims: { model },
      });
      await deps.emit("metric", {
        name: "tokens.completion",
        value: usage.completion_tokens,
        unit: "tokens",
        dims: { model },
      });
    }
    if (answer.costUsd !== undefined && answer.costUsd > 0) {
      await deps.emit("metric", {
        name: "cost.model",
        value: answer.costUsd,
        unit: "USD",
        dims: { model },
      });
    }
    await deps.emit("tool_result", {
      call_id: callId,
      result: {
        model: answer.model,
        finish_reason: answer.finishReason,
        ...(usage ? { usage } : {}),
        ...(answer.costUsd !== undefined ? { cost_usd: answer.costUsd } : {}),
      },
    });
    return answer;
  } catch (err) {
    const e = asLeaseError(err);
    if (e.code === "BUDGET_EXHAUSTED" && credential) await deps.exhausted(credential.id, e.message);
    await deps.emit("tool_result", {
      call_id: callId,
      error: { code: e.code, message: e.message, retryable: e.code === "INTERNAL_ERROR" },
    });
    throw e;
  }
}

function asLeaseError(err: unknown): LeaseError {
  if (err instanceof LeaseError) return err;
  if (err instanceof Deno.errors.NotCapable) {
    return new LeaseError("PERMISSION_DENIED", err.message);
  }
  if (err instanceof DOMException && err.name === "AbortError") {
    return new LeaseError("CANCELLED", `model call aborted: ${err.message}`);
  }
  return new LeaseError("INTERNAL_ERROR", `model call failed: ${(err as Error)?.message ?? err}`);
}

async function stream(
  deps: ModelDeps,
  credential: AgentCredential,
  request: ChatRequest,
  options: ChatOptions,
): Promise<ChatAnswer> {
  const signal = options.signal ? AbortSignal.any([deps.signal, options.signal]) : deps.signal;
  const url = `${credential.endpoint.replace(/\/+$/, "")}/chat/completions`;
  const res = await fetch(url, {
    method: "POST",
    headers: {
      authorization: `Bearer ${credential.value}`,
      "content-type": "application/json",
      accept: "text/event-stream",
      traceparent: deps.traceparent,
    },
    body: JSON.stringify({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    }),
    signal,
  });
  if (!res.ok || !res.body) {
    const body = await readPrefix(res, MAX_ERROR_BODY);
    const message = upstreamMessage(res.status, body);
    if (isBudgetRefusal(res.status, body)) throw new LeaseError("BUDGET_EXHAUSTED", message);
    throw new LeaseError(refusalCode(res.status, body), message);
  }
  const header = Number(res.headers.get("x-litellm-response-cost") ?? NaN);
  let text = "";
  let answered = request.model;
  let finishReason: string | null = null;
  let usage: ChatUsage | undefined;
  let cost: number | undefined = Number.isFinite(header) ? header : undefined;
  // deno-lint-ignore no-explicit-any
  for await (const chunk of sseData(res.body) as AsyncGenerator<any>) {
    if (typeof chunk?.model === "string") answered = chunk.model;
    if (chunk?.usage) {
      const u = chunk.usage;
      usage = {
        prompt_tokens: Number(u.prompt_tokens ?? 0),
        completion_tokens: Number(u.completion_tokens ?? 0),
        total_tokens: Number(u.total_tokens ?? 0),
      };
      // Gateways that price calls put it here (OpenRouter's `usage.cost`, a LiteLLM hook's).
      if (typeof u.cost === "number" && Number.isFinite(u.cost)) cost = u.cost;
    }
    const choice = chunk?.choices?.[0];
    if (choice?.finish_reason) finishReason = String(choice.finish_reason);
    const delta = choice?.delta?.content;
    if (typeof delta === "string" && delta !== "") {
      text += delta;
      if (options.thoughts) await deps.emit("thought", { text: delta });
      await options.onDelta?.(delta);
    }
  }
  return {
    text,
    model: answered,
    finishReason,
    ...(usage ? { usage } : {}),
    ...(cost !== undefined ? { costUsd: cost } : {}),
  };
}
