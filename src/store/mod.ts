/**
 * State in Deno KV: key shapes, record shapes, group commit, large values
 * and retention (the sweeper). Nothing above this layer spells a KV key.
 *
 * @example
 * ```ts ignore
 * import { Store } from "./mod.ts";
 * const store = await Store.open({ path: ":memory:" });
 * await store.close();
 * ```
 *
 * @module
 */
export * from "./damage.ts";
export * from "./doctor.ts";
export * from "./group_commit.ts";
export * from "./job_index.ts";
export * from "./keys.ts";
export * from "./kv_file.ts";
export * from "./large_value.ts";
export * from "./nodes.ts";
export * from "./records.ts";
export * from "./store.ts";
export * from "./storage_health.ts";
export * from "./sweeper.ts";
export * from "./revocations.ts";
export * from "./runtime_log.ts";
