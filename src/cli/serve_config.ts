/**
 * `arcp serve` configuration: flags, then environment, then defaults.
 *
 * @module
 */
import { parseArgs } from "parse-args";

/** Everything `arcp serve` needs. */
export interface ServeConfig {
  /** Interface to listen on. */
  host: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** KV file, or `:memory:`. */
  kvPath: string;
  /** Agents folder. */
  agentsDir: string;
  /** Token → principal. */
  tokens: Record<string, string>;
  /** Whether the token was generated (and should be printed). */
  generatedToken?: string;
  /** Serve one session on stdin/stdout instead of listening. */
  stdio: boolean;
  /** Start without checking the KV file's structure first. */
  skipStoreCheck: boolean;
  /** Heartbeat interval (s). */
  heartbeatSec: number;
  /** Resume window (s). */
  resumeWindowSec: number;
  /** TLS certificate and key files. */
  tls?: { certFile: string; keyFile: string };
  /** The runtime's configuration files (tokens, TLS): no lease may reach them. */
  configFiles: string[];
  /** Output quotas; unset ones keep the runtime's defaults. */
  quotas: {
    maxEventsPerJob?: number;
    maxLogBytesPerJob?: number;
    maxEventsPerPrincipal?: number;
    maxLogBytesPerPrincipal?: number;
    maxJobsPerPrincipal?: number;
  };
  /** Live sessions one principal may hold; unset keeps the default. */
  maxSessionsPerPrincipal?: number;
  /** Connection limits of the gate; unset ones follow the fd limit. */
  gate: {
    maxConnections?: number;
    maxConnectionsPerAddress?: number;
    headerTimeoutMs?: number;
  };
  /** Sandbox process limits; unset ones keep the runtime's defaults. */
  sandbox: {
    hostHeapMb?: number;
    memoryMb?: number;
    warmPool?: number;
    warmMax?: number;
    jobsPerProcess?: number;
    sandboxWaitMs?: number;
  };
  /** This runtime as one node of several on one KV: id, advertised URL, lease timings. */
  node: { id?: string; url?: string; leaseMs?: number; renewMs?: number };
  /** How long a new WebSocket may go without `session.hello` (s); unset keeps the default. */
  helloTimeoutSec?: number;
  /** Bytes queued to one socket past which it is dropped; unset keeps the default. */
  maxSocketBytes?: number;
  /**
   * Retention periods (ms; 0 keeps forever) and the idempotency key TTL (ms);
   * unset ones keep the runtime's defaults.
   */
  retention: {
    jobRetentionMs?: number;
    jobHistoryTtlMs?: number;
    auditRetentionMs?: number;
    idempotencyTtlMs?: number;
  };
  /** Credential provisioning, when configured. */
  credentials?: {
    kind: "litellm" | "local";
    litellmUrl?: string;
    litellmEndpoint?: string;
    adminKey?: string;
    allowInsecure: boolean;
  };
}

/** Usage text of `arcp serve`. */
export const SERVE_USAGE = `usage: arcp serve [options]
  --host HOST              interface (env ARCP_HOST, default 127.0.0.1)
  --port PORT              port, 0 = any free port (env ARCP_PORT, default 7777)
  --kv PATH                KV file, :memory:, or a KV Connect URL https://… (token in
                           DENO_KV_ACCESS_TOKEN) (env ARCP_KV, default ./data/arcp.kv)
  --node-id ID             this node's id among runtimes sharing the KV (env ARCP_NODE_ID,
                           default generated); --node-url URL: where clients reach it
  --node-lease-ms N        node lease (default 10000), renewed every --node-renew-ms (2000)
  --agents DIR             agents folder (env ARCP_AGENTS, default ./agents)
  --token TOKEN=PRINCIPAL  accept a bearer token (repeatable; env ARCP_TOKENS=tok=p,tok2=p2)
  --tokens-file PATH       read TOKEN=PRINCIPAL lines from a file
  --stdio                  serve one session on stdin/stdout
  --skip-store-check       start without checking the KV file first (see arcp doctor)
  --heartbeat-sec N        heartbeat interval (default 30)
  --resume-window-sec N    resume window (default 600)
  --tls-cert FILE          serve wss:// with this certificate (PEM)
  --tls-key FILE           and this key (PEM)
  --credentials KIND       provision per-job credentials: litellm or local
  --litellm-url URL        LiteLLM admin API (admin key from env ARCP_LITELLM_ADMIN_KEY)
  --litellm-endpoint URL   URL clients use with the keys (default URL/v1)
  --allow-insecure-credentials  advertise credentials to loopback peers without TLS (development)
  --job-max-events N       events one job may log (default 100000)
  --job-max-log-mb N       MiB of events one job may log (default 512)
  --principal-max-events N events one principal's live jobs may log together (default 1000000)
  --principal-max-log-mb N MiB one principal's live jobs may log together (default 1024)
  --principal-max-jobs N   live jobs one principal may have (default 100)
  --principal-max-sessions N  live sessions one principal may hold (default 100)
  --max-connections N      open connections in all (default: a quarter of the fd limit
                           less 256; the oldest not yet upgraded make room for new ones)
  --max-connections-per-addr N  open connections from one address (default: half of that)
  --header-timeout-sec N   close a connection not upgraded that gets no answer this long (default 10)
  --hello-timeout-sec N    close a WebSocket that sends no session.hello this long (default 10)
  --max-socket-buffer-mb N drop a socket with this much queued to it (default 8)
  --sandbox-heap-mb N      V8 heap cap of each sandbox process (default 512)
  --sandbox-memory-mb N    resident memory ceiling of each sandbox process (default: an eighth
                           of the machine's memory, 256 MiB to 4 GiB, at least the heap cap + 128)
  --warm-pool N            idle sandbox processes kept ready; 0 starts one per job (default 2)
  --warm-max N             most sandbox processes kept ready, with their agent's worker
                           already started for recent demand (default 8; ~50 MiB each)
  --jobs-per-process N     jobs one sandbox process serves, each in a fresh worker, all of one
                           principal and worker key (default 100; 1 = a process per job)
  --sandbox-wait-sec N     how long a job may wait for a worker when the sandbox is at capacity
                           before it ends with a retryable sandbox_busy error (default 10)
  --job-retention-days N   keep finished jobs (record, list entry, idempotency key) this long
                           after they end; 0 or forever keeps them (default 7)
  --job-history-days N     keep finished jobs' event histories this long, at most as long as
                           the jobs; 0 or forever: as long as the jobs (default 7)
  --audit-retention-days N keep subscription audit entries this long; 0 or forever (default 30)
  --idempotency-ttl-hours N  how long an idempotency key names its job (default 24)
With no token configured a random one is generated and printed.`;

function parseTokenPairs(pairs: string[], where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of pairs) {
    const pair = raw.trim();
    if (!pair || pair.startsWith("#")) continue;
    const eq = pair.lastIndexOf("=");
    if (eq <= 0 || eq === pair.length - 1) {
      throw new TypeError(`${where}: expected TOKEN=PRINCIPAL`);
    }
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * A period in days or hours as milliseconds; `0` and `forever` both mean
 * "keep forever" (0) when `forever` is allowed.
 */
function period(
  text: string | undefined,
  unitMs: number,
  name: string,
  forever: boolean,
): number | undefined {
  if (text === undefined) return undefined;
  if (forever && text === "forever") return 0;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0 || (!forever && n === 0)) {
    throw new TypeError(
      `${name}: expected a ${
        forever ? "non-negative number or forever" : "positive number"
      }, got ${text}`,
    );
  }
  return Math.round(n * unitMs);
}

function positiveInt(
  text: string | undefined,
  fallback: number,
  name: string,
  allowZero = false,
): number {
  if (text === undefined || text === "") return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) {
    throw new TypeError(
      `${name}: expected a ${allowZero ? "non-negative" : "positive"} integer, got ${text}`,
    );
  }
  return n;
}

/**
 * Reads the serve configuration.
 *
 * @param args command-line arguments after `serve`
 * @param env environment lookup
 * @returns the configuration
 * @throws {TypeError} with a message naming the bad flag
 */
export async function readServeConfig(
  args: string[],
  env: (name: string) => string | undefined,
): Promise<ServeConfig> {
  const { values } = parseArgs({
    args,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      kv: { type: "string" },
      agents: { type: "string" },
      token: { type: "string", multiple: true },
      "tokens-file": { type: "string" },
      stdio: { type: "boolean" },
      "skip-store-check": { type: "boolean" },
      "heartbeat-sec": { type: "string" },
      "resume-window-sec": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      credentials: { type: "string" },
      "litellm-url": { type: "string" },
      "litellm-endpoint": { type: "string" },
      "allow-insecure-credentials": { type: "boolean" },
      "job-max-events": { type: "string" },
      "job-max-log-mb": { type: "string" },
      "principal-max-events": { type: "string" },
      "principal-max-log-mb": { type: "string" },
      "principal-max-jobs": { type: "string" },
      "principal-max-sessions": { type: "string" },
      "warm-max": { type: "string" },
      "jobs-per-process": { type: "string" },
      "sandbox-wait-sec": { type: "string" },
      "max-connections": { type: "string" },
      "max-connections-per-addr": { type: "string" },
      "header-timeout-sec": { type: "string" },
      "hello-timeout-sec": { type: "string" },
      "max-socket-buffer-mb": { type: "string" },
      "sandbox-heap-mb": { type: "string" },
      "sandbox-memory-mb": { type: "string" },
      "warm-pool": { type: "string" },
      "job-retention-days": { type: "string" },
      "job-history-days": { type: "string" },
      "audit-retention-days": { type: "string" },
      "idempotency-ttl-hours": { type: "string" },
      "node-id": { type: "string" },
      "node-url": { type: "string" },
      "node-lease-ms": { type: "string" },
      "node-renew-ms": { type: "string" },
    },
    strict: true,
  });
  const tokens: Record<string, string> = {
    ...parseTokenPairs((env("ARCP_TOKENS") ?? "").split(","), "ARCP_TOKENS"),
    ...(values["tokens-file"]
      ? parseTokenPairs(
        (await Deno.readTextFile(values["tokens-file"])).split("\n"),
        "--tokens-file",
      )
      : {}),
    ...parseTokenPairs(values.token ?? [], "--token"),
  };
  let generatedToken: string | undefined;
  if (Object.keys(tokens).length === 0) {
    generatedToken = Array.from(
      crypto.getRandomValues(new Uint8Array(24)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    tokens[generatedToken] = "local";
  }
  let credentials: ServeConfig["credentials"];
  if (values.credentials !== undefined) {
    const kind = values.credentials;
    if (kind !== "litellm" && kind !== "local") {
      throw new TypeError("--credentials: expected litellm or local");
    }
    const adminKey = env("ARCP_LITELLM_ADMIN_KEY");
    if (kind === "litellm" && (!values["litellm-url"] || !adminKey)) {
      throw new TypeError(
        "--credentials litellm needs --litellm-url and ARCP_LITELLM_ADMIN_KEY in the environment",
      );
    }
    credentials = {
      kind,
      litellmUrl: values["litellm-url"],
      litellmEndpoint: values["litellm-endpoint"],
      adminKey,
      allowInsecure: values["allow-insecure-credentials"] ?? false,
    };
  }
  if (!!values["tls-cert"] !== !!values["tls-key"]) {
    throw new TypeError("--tls-cert and --tls-key go together");
  }
  const optional = (flag: string, scale = 1) => {
    const text = (values as Record<string, string | undefined>)[flag];
    return text === undefined ? undefined : positiveInt(text, 0, `--${flag}`) * scale;
  };
  const MIB = 1024 * 1024;
  const DAY_MS = 24 * 3600_000;
  return {
    quotas: {
      maxEventsPerJob: optional("job-max-events"),
      maxLogBytesPerJob: optional("job-max-log-mb", MIB),
      maxEventsPerPrincipal: optional("principal-max-events"),
      maxLogBytesPerPrincipal: optional("principal-max-log-mb", MIB),
      maxJobsPerPrincipal: optional("principal-max-jobs"),
    },
    maxSessionsPerPrincipal: optional("principal-max-sessions"),
    gate: {
      maxConnections: optional("max-connections"),
      maxConnectionsPerAddress: optional("max-connections-per-addr"),
      headerTimeoutMs: optional("header-timeout-sec", 1000),
    },
    sandbox: {
      hostHeapMb: optional("sandbox-heap-mb"),
      memoryMb: optional("sandbox-memory-mb"),
      warmPool: values["warm-pool"] === undefined
        ? undefined
        : positiveInt(values["warm-pool"], 0, "--warm-pool", true),
      warmMax: optional("warm-max"),
      jobsPerProcess: optional("jobs-per-process"),
      sandboxWaitMs: optional("sandbox-wait-sec", 1000),
    },
    retention: {
      jobRetentionMs: period(values["job-retention-days"], DAY_MS, "--job-retention-days", true),
      jobHistoryTtlMs: period(values["job-history-days"], DAY_MS, "--job-history-days", true),
      auditRetentionMs: period(
        values["audit-retention-days"],
        DAY_MS,
        "--audit-retention-days",
        true,
      ),
      idempotencyTtlMs: period(
        values["idempotency-ttl-hours"],
        3600_000,
        "--idempotency-ttl-hours",
        false,
      ),
    },
    helloTimeoutSec: optional("hello-timeout-sec"),
    node: nodeConfig(values, env),
    maxSocketBytes: optional("max-socket-buffer-mb", MIB),
    host: values.host ?? env("ARCP_HOST") ?? "127.0.0.1",
    port: positiveInt(values.port ?? env("ARCP_PORT"), 7777, "--port", true),
    kvPath: values.kv ?? env("ARCP_KV") ?? "./data/arcp.kv",
    agentsDir: values.agents ?? env("ARCP_AGENTS") ?? "./agents",
    tokens,
    generatedToken,
    stdio: values.stdio ?? false,
    skipStoreCheck: values["skip-store-check"] ?? false,
    heartbeatSec: positiveInt(values["heartbeat-sec"], 30, "--heartbeat-sec"),
    resumeWindowSec: positiveInt(values["resume-window-sec"], 600, "--resume-window-sec"),
    credentials,
    configFiles: [values["tokens-file"], values["tls-cert"], values["tls-key"]]
      .filter((f): f is string => f !== undefined),
    tls: values["tls-cert"]
      ? { certFile: values["tls-cert"], keyFile: values["tls-key"]! }
      : undefined,
  };
}

/**
 * The node flags: `--node-id` (or `ARCP_NODE_ID`), `--node-url`, and the
 * lease timings `--node-lease-ms` and `--node-renew-ms` (renewal below the lease).
 *
 * @param values parsed flags
 * @param env environment lookup
 * @returns the node settings; unset ones keep the runtime's defaults
 * @throws {TypeError} naming a bad flag
 */
function nodeConfig(
  values: Record<string, unknown>,
  env: (name: string) => string | undefined,
): ServeConfig["node"] {
  const id = (values["node-id"] as string | undefined) ?? env("ARCP_NODE_ID");
  if (id !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
    throw new TypeError("--node-id takes 1–64 letters, digits, '.', '_' or '-'");
  }
  const ms = (flag: string) => {
    const v = values[flag] as string | undefined;
    return v === undefined ? undefined : positiveInt(v, 0, `--${flag}`);
  };
  const node: ServeConfig["node"] = {};
  if (id !== undefined) node.id = id;
  if (values["node-url"] !== undefined) node.url = values["node-url"] as string;
  const leaseMs = ms("node-lease-ms");
  const renewMs = ms("node-renew-ms");
  if (leaseMs !== undefined) node.leaseMs = leaseMs;
  if (renewMs !== undefined) node.renewMs = renewMs;
  if ((renewMs ?? 2000) >= (leaseMs ?? 10_000)) {
    throw new TypeError("--node-renew-ms must be below --node-lease-ms");
  }
  return node;
}
