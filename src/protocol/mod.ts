/**
 * The ARCP v1.1 wire profile: envelope, message payloads, event kinds,
 * errors, leases, feature flags and ids. Knows nothing of sockets, KV or
 * workers.
 *
 * @example
 * ```ts
 * import { decodeEnvelope } from "./mod.ts";
 * const env = decodeEnvelope('{"arcp":"1.1","id":"1","type":"session.ping","payload":{}}');
 * console.log(env.type); // "session.ping"
 * ```
 *
 * @module
 */
export * from "./agent_ref.ts";
export * from "./encode.ts";
export * from "./envelope.ts";
export * from "./errors.ts";
export * from "./events.ts";
export * from "./features.ts";
export * from "./ids.ts";
export * from "./job_input.ts";
export * from "./lease.ts";
export * from "./messages.ts";
export * from "./nesting.ts";
export * from "./time.ts";
