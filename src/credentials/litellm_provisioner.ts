/**
 * A credential provisioner for LiteLLM-compatible gateways: one virtual key
 * per job, with the lease baked in (allowed models from `model.use`, max
 * budget from a USD `cost.budget`, duration from `expires_at`), issued under
 * a non-secret key alias so it can be revoked even if the process died
 * before it saw the key.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import {
  type Credential,
  type CredentialProvisioner,
  type CredentialRequest,
  RevocationError,
} from "./credentials.ts";

/** Options of {@linkcode LiteLlmProvisioner}. */
export interface LiteLlmOptions {
  /** The gateway's admin API base URL, e.g. `https://gateway.example.com`. */
  adminUrl: string;
  /** The gateway's master/admin key (read from the environment, never logged). */
  adminKey: string;
  /** The URL agents and clients send requests to (default `${adminUrl}/v1`). */
  endpoint?: string;
  /** Per-request timeout (ms, default 10 s). */
  timeoutMs?: number;
}

function traceparent(traceId: string): string {
  const span = Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return `00-${traceId}-${span}-01`;
}

/** Issues and deletes LiteLLM virtual keys. */
export class LiteLlmProvisioner implements CredentialProvisioner {
  /** Name in logs and KV records. */
  readonly name = "litellm";
  #adminUrl: string;
  #adminKey: string;
  #endpoint: string;
  #timeoutMs: number;

  /**
   * Creates a provisioner for one gateway.
   *
   * @param options gateway URL and admin key
   */
  constructor(options: LiteLlmOptions) {
    this.#adminUrl = options.adminUrl.replace(/\/+$/, "");
    this.#adminKey = options.adminKey;
    this.#endpoint = options.endpoint ?? `${this.#adminUrl}/v1`;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  #post(path: string, body: unknown, traceId?: string): Promise<Response> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#adminKey}`,
      "content-type": "application/json",
    };
    if (traceId) headers.traceparent = traceparent(traceId);
    return fetch(`${this.#adminUrl}${path}`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
  }

  /**
   * Generates a virtual key scoped to the job's lease.
   *
   * @param request the job's scope
   * @returns the credential
   * @throws {ArcpError} `INTERNAL_ERROR` when the gateway refuses
   */
  async issue(request: CredentialRequest): Promise<Omit<Credential, "id">> {
    const body: Record<string, unknown> = {
      key_alias: request.handle,
      metadata: { arcp_job_id: request.jobId, arcp_trace_id: request.traceId },
    };
    const constraints: NonNullable<Credential["constraints"]> = {};
    const models = request.lease["model.use"];
    if (models) {
      body.models = [...models];
      constraints.allowed_models = [...models];
    }
    const usd = request.budget?.USD;
    if (usd !== undefined) {
      body.max_budget = usd;
      constraints.max_spend = { currency: "USD", amount: usd };
    }
    if (request.expiresAt) {
      const seconds = Math.max(1, Math.ceil((Date.parse(request.expiresAt) - Date.now()) / 1000));
      body.duration = `${seconds}s`;
      constraints.expires_at = request.expiresAt;
    }
    const res = await this.#post("/key/generate", body, request.traceId);
    const text = await res.text();
    if (!res.ok) {
      throw new ArcpError("INTERNAL_ERROR", `gateway refused to issue a key (HTTP ${res.status})`);
    }
    let key: unknown;
    try {
      key = JSON.parse(text).key;
    } catch {
      // handled below
    }
    if (typeof key !== "string" || key.length === 0) {
      throw new ArcpError("INTERNAL_ERROR", "gateway answered /key/generate without a key");
    }
    return {
      scheme: "bearer",
      value: key,
      endpoint: this.#endpoint,
      profile: "openai",
      constraints,
    };
  }

  /**
   * Deletes a virtual key by its alias. A key that is already gone counts
   * as revoked.
   *
   * @param handle the alias it was issued under
   * @throws {RevocationError} transient (network, 5xx, 429) or permanent (other 4xx)
   */
  async revoke(handle: string): Promise<void> {
    let res: Response;
    try {
      res = await this.#post("/key/delete", { key_aliases: [handle] });
    } catch (err) {
      throw new RevocationError(`gateway unreachable: ${(err as Error).message}`, false);
    }
    await res.body?.cancel();
    if (res.ok || res.status === 404) return;
    const transient = res.status >= 500 || res.status === 429 || res.status === 408;
    throw new RevocationError(`gateway answered HTTP ${res.status} to /key/delete`, !transient);
  }
}
