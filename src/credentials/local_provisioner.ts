/**
 * A credential provisioner for local development: mints random bearer
 * tokens and keeps the live ones in memory, so a development gateway in the
 * same process can check them with {@linkcode LocalProvisioner.isActive}.
 *
 * @module
 */
import { newSecret } from "../protocol/ids.ts";
import type { Credential, CredentialProvisioner, CredentialRequest } from "./credentials.ts";

/** Issues throwaway tokens; nothing leaves the process. */
export class LocalProvisioner implements CredentialProvisioner {
  /** Name in logs and KV records. */
  readonly name = "local";
  #endpoint: string;
  #active = new Map<string, string>();

  /**
   * Creates a local provisioner.
   *
   * @param endpoint the URL clients should present the tokens to
   */
  constructor(endpoint = "http://127.0.0.1:4000/v1") {
    this.#endpoint = endpoint;
  }

  /**
   * Mints a token.
   *
   * @param request the job's scope
   * @returns the credential
   */
  issue(request: CredentialRequest): Promise<Omit<Credential, "id">> {
    const value = newSecret("sk-local-");
    this.#active.set(request.handle, value);
    const constraints: NonNullable<Credential["constraints"]> = {};
    if (request.expiresAt) constraints.expires_at = request.expiresAt;
    if (request.lease["model.use"]) constraints.allowed_models = [...request.lease["model.use"]];
    return Promise.resolve({
      scheme: "bearer",
      value,
      endpoint: this.#endpoint,
      profile: "openai",
      constraints,
    });
  }

  /**
   * Forgets a token.
   *
   * @param handle the handle it was issued under
   * @returns resolves once forgotten
   */
  revoke(handle: string): Promise<void> {
    this.#active.delete(handle);
    return Promise.resolve();
  }

  /**
   * Whether a token is live.
   *
   * @param value the presented token
   * @returns true while its job runs
   */
  isActive(value: string): boolean {
    for (const v of this.#active.values()) if (v === value) return true;
    return false;
  }
}
