/**
 * A Deno-native runtime for ARCP v1.1 (the Agent Runtime Control Protocol):
 * sessions over WebSocket or stdio, jobs run by named, versioned agents, each
 * in its own Web Worker whose Deno permissions come from the job's lease,
 * and every piece of state in Deno KV.
 *
 * Embed it in any Deno HTTP server:
 *
 * @example
 * ```ts ignore
 * import { createRuntime } from "@arcp/runtime";
 *
 * const runtime = await createRuntime({
 *   kvPath: "./data/arcp.kv",
 *   agentsDir: "./agents",
 *   tokens: { "change-me": "alice" },
 * });
 * Deno.serve({ port: 7777 }, runtime.fetch);
 * ```
 *
 * Write an agent:
 *
 * @example
 * ```ts
 * import { defineAgent } from "@arcp/runtime";
 *
 * export default defineAgent({
 *   name: "greeter",
 *   version: "1.0.0",
 *   async run(input: { who: string }, ctx) {
 *     await ctx.progress({ current: 1, total: 1 });
 *     return { greeting: `hello ${input.who}` };
 *   },
 * });
 * ```
 *
 * @module
 */
export { createRuntime, type Runtime, RUNTIME_INFO, type RuntimeOptions } from "./src/runtime.ts";
export {
  type AgentContext,
  type AgentDefinition,
  type AgentFs,
  type AgentLease,
  type ArtifactRef,
  defineAgent,
  type DelegateOptions,
  LeaseError,
  type LogLevel,
  type ProgressBody,
} from "./src/agent.ts";
export {
  LOG_LEVELS,
  type LogFormat,
  type Logger,
  type LoggerOptions,
  type LogSeverity,
  silentLogger,
  stderrLogger,
} from "./src/logger.ts";
export {
  type AnonymousLimits,
  AUTH_FAILURES,
  authenticateBearer,
  type Authenticator,
  authError,
  type AuthFailure,
  type AuthScheme,
  type Identity,
} from "./src/session/auth.ts";
export type { AuthOptions } from "./src/session/authenticator.ts";
export type { JwtOptions } from "./src/session/jwt_auth.ts";
export { Counter, Histogram, type Labels, Metrics, METRICS_CONTENT_TYPE } from "./src/metrics.ts";
export type {
  AgentEvent,
  AgentRun,
  Sandbox,
  SandboxJob,
  SandboxListener,
  Sharing,
  SharingAgent,
} from "./src/sandbox/sandbox.ts";
export type { SupervisorOptions } from "./src/sandbox/supervisor.ts";
export type { WireCredential } from "./src/sandbox/worker/wire.ts";
export type { Listener } from "./src/sandbox/protected_listeners.ts";
export type { ToolContext, ToolHandler } from "./src/jobs/tools.ts";
export {
  type Credential,
  type CredentialProvisioner,
  type CredentialRequest,
  type CredentialServiceOptions,
  RevocationError,
} from "./src/credentials/credentials.ts";
export { type LiteLlmOptions, LiteLlmProvisioner } from "./src/credentials/litellm_provisioner.ts";
export { LocalProvisioner } from "./src/credentials/local_provisioner.ts";
export {
  ArcpError,
  ERROR_CODES,
  type ErrorCode,
  type ErrorPayload,
} from "./src/protocol/errors.ts";
export type { Lease } from "./src/protocol/lease.ts";
export type { AgentInventoryEntry } from "./src/protocol/messages.ts";
export type { JobLimits, NodeInfo, NodeOptions } from "./src/jobs/job_manager.ts";
export type { SessionLimits } from "./src/session/registry.ts";
export type { DrainState, DrainStatus } from "./src/jobs/drain.ts";
export type { Deployment } from "./src/api/deps.ts";
