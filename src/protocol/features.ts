/**
 * Feature flags negotiated in `session.hello` / `session.welcome`.
 *
 * @module
 */

/** Every feature flag ARCP v1.1 defines. */
export const ALL_FEATURES = [
  "heartbeat",
  "ack",
  "list_jobs",
  "subscribe",
  "lease_expires_at",
  "cost.budget",
  "model.use",
  "provisioned_credentials",
  "progress",
  "result_chunk",
  "agent_versions",
] as const;

/**
 * This runtime's vendor features (`x-<vendor>.<name>`): negotiated like the
 * others, so a client that does not ask for one never meets it. See
 * `job_input.ts` for `x-arcp-deno.input`.
 */
export const VENDOR_FEATURES = ["x-arcp-deno.input"] as const;

/** One feature flag: ARCP's or one of this runtime's vendor features. */
export type Feature = typeof ALL_FEATURES[number] | typeof VENDOR_FEATURES[number];

/**
 * The features this runtime implements today. A feature is listed here only
 * once it works end to end; the welcome advertises the intersection with
 * what the client asked for.
 */
export const RUNTIME_FEATURES: readonly Feature[] = [
  "heartbeat",
  "ack",
  "list_jobs",
  "subscribe",
  "lease_expires_at",
  "cost.budget",
  "model.use",
  "progress",
  "result_chunk",
  "agent_versions",
  ...VENDOR_FEATURES,
];

/**
 * The negotiated feature set: what both sides support.
 *
 * @param offered what the runtime supports
 * @param requested what the client's hello listed (nothing means none)
 * @returns the intersection, in the runtime's order
 */
export function negotiateFeatures(
  offered: readonly Feature[],
  requested: readonly string[] | undefined,
): Feature[] {
  const want = new Set(requested ?? []);
  return offered.filter((f) => want.has(f));
}
