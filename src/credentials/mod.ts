/**
 * Provisioned credentials (ARCP.md §5.8): the service that issues, rotates
 * and revokes a job's scoped credentials, and the provisioners that mint
 * them upstream (a local one for development, one for LiteLLM gateways).
 *
 * @example
 * ```ts
 * import { LocalProvisioner } from "./mod.ts";
 * console.log(new LocalProvisioner().name); // "local"
 * ```
 *
 * @module
 */
export * from "./credentials.ts";
export * from "./litellm_provisioner.ts";
export * from "./local_provisioner.ts";
