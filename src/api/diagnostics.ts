/**
 * What an operator should know about how this runtime is set up: each item
 * a stable code, a level and one sentence saying what to do.
 *
 * @module
 */
import type { ApiDeps } from "./deps.ts";
import type { NodeInfo } from "../jobs/job_manager.ts";

/** One diagnostic. */
export interface Diagnostic {
  /** Stable code. */
  code: string;
  /** `warn`: worth acting on; `info`: worth knowing. */
  level: "info" | "warn";
  /** What it is and what to do. */
  message: string;
}

/** A sandbox process past this share of its memory ceiling is reported. */
export const MEMORY_WARN_SHARE = 0.8;

/**
 * The diagnostics of a runtime, now.
 *
 * @param deps the runtime's parts
 * @param nodes the nodes sharing the KV (`listNodes()`)
 * @returns the items, warnings first
 */
export function diagnose(deps: ApiDeps, nodes: readonly NodeInfo[] = []): Diagnostic[] {
  const items: Diagnostic[] = [];
  const warn = (code: string, message: string) => items.push({ code, level: "warn", message });
  const info = (code: string, message: string) => items.push({ code, level: "info", message });
  const { deployment, credentials } = deps;
  if (deployment.generatedToken) {
    warn(
      "dev_token",
      "the token was generated at start (development): pass --token or --tokens-file for real clients",
    );
  }
  if (deployment.host !== undefined && !deployment.tls && !isLoopbackHost(deployment.host)) {
    warn(
      "no_tls",
      `listening on ${deployment.host} without TLS: tokens cross the network in clear; pass --tls-cert and --tls-key`,
    );
  }
  if (!credentials) {
    info(
      "credentials_without_provisioner",
      "no credential provisioner is configured: jobs get no provisioned credentials (--credentials)",
    );
  } else {
    if (credentials.provisioner === "local") {
      warn(
        "credentials_local_provisioner",
        "credentials come from the local development provisioner: no upstream checks them",
      );
    }
    if (credentials.allowInsecure) {
      warn(
        "credentials_insecure",
        "credentials are offered to loopback peers without TLS (--allow-insecure-credentials)",
      );
    }
  }
  const others = nodes.filter((n) => !n.self && n.alive).map((n) => n.node_id);
  const kv = deps.store.remote ? `KV Connect at ${deps.kvPath}` : `the local file ${deps.kvPath}`;
  if (deps.kvPath === ":memory:") {
    warn("kv_in_memory", "KV is in memory: jobs and sessions are lost when the process stops");
  } else if (others.length > 0) {
    info(
      "shared_kv",
      `KV is ${kv}, shared with ${others.length} other live node${
        others.length === 1 ? "" : "s"
      } (${others.join(", ")}): see "Scaling out" in the README`,
    );
  } else if (deps.store.remote) {
    info(
      "single_node",
      `KV is ${kv}: no other node shares it now; nodes started on the same URL join this one`,
    );
  } else {
    info(
      "single_node",
      `KV is ${kv}: no other node shares it now; processes on this host may share the file, never over a network filesystem`,
    );
  }
  const sandbox = deps.sandbox();
  if (sandbox.mode === "worker") {
    warn(
      "sandbox_workers",
      "agents run in workers inside the runtime's process: an agent that exhausts memory stops the runtime",
    );
  } else {
    info(
      "sandbox_mode",
      `agents run in ${sandbox.mode === "process" ? "sandbox processes" : "a custom sandbox"}`,
    );
  }
  if (sandbox.memory_mb !== undefined) {
    const ceiling = sandbox.memory_mb * 1024 * 1024;
    for (const host of sandbox.hosts) {
      if (host.rss_bytes !== undefined && host.rss_bytes >= ceiling * MEMORY_WARN_SHARE) {
        warn(
          "host_memory_high",
          `sandbox process ${host.pid} uses ${
            Math.round(host.rss_bytes / 1048576)
          } MiB of its ${sandbox.memory_mb} MiB ceiling`,
        );
      }
    }
  }
  const storage = deps.store.health();
  if (!storage.ok) {
    warn("storage_failing", `KV commits fail since ${storage.since}: ${storage.error}`);
  }
  const drain = deps.drain.status;
  if (drain.state !== "serving") {
    info("draining", `the runtime is ${drain.state}: it accepts no new jobs`);
  }
  return [...items.filter((i) => i.level === "warn"), ...items.filter((i) => i.level === "info")];
}

/**
 * Whether a listening host is loopback only.
 *
 * @param host the interface
 * @returns true for 127.0.0.0/8, ::1 and localhost
 */
export function isLoopbackHost(host: string): boolean {
  return host.startsWith("127.") || host === "::1" || host === "[::1]" || host === "localhost";
}
