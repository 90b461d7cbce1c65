/**
 * `arcp serve` configuration. One table, {@linkcode SERVE_OPTIONS}, drives
 * everything: the command-line flags, the keys of the `--config` file (a
 * JSON file validated with zod), the environment variables, `serve --help`
 * and the README's options table (`serve_config_test.ts` checks the README
 * lists every row). Adding a setting is one row here and the line that
 * reads it (`toRuntimeOptions` or `serve.ts`).
 *
 * Precedence: flag, then environment, then the config file, then the
 * runtime's default.
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { z } from "zod";
import { checkAuthOptions, type RuntimeOptions } from "../runtime.ts";
import type { LogFormat, LogSeverity } from "../logger.ts";

/** How a flag's text becomes a value before its schema checks it. */
export type OptionType = "string" | "number" | "boolean" | "list";

/** One setting of `arcp serve`. */
export interface ServeOption {
  /** The flag, without `--`. */
  readonly flag: string;
  /** Dotted key in the config file; absent for a flag the file cannot set (`--config`). */
  readonly key?: string;
  /** How the flag's text is read. */
  readonly type: OptionType;
  /** What the value must be, in the file and after the flag's text is read. */
  readonly schema: z.ZodType;
  /** The flag's argument in the usage (`N`, `PATH`); none for a boolean. */
  readonly arg?: string;
  /** Environment variable read when the flag is absent (a list: comma-separated). */
  readonly env?: string;
  /** The default, as the usage shows it. */
  readonly default?: string;
  /** What it does, one line. */
  readonly help: string;
}

const POSITIVE_INT = "expected a positive integer";
const NON_NEGATIVE_INT = "expected a non-negative integer";

/** An integer ≥ 1. */
const positiveInt = z.int({ error: POSITIVE_INT }).min(1, { error: POSITIVE_INT });
/** An integer ≥ 0. */
const nonNegativeInt = z.int({ error: NON_NEGATIVE_INT }).min(0, { error: NON_NEGATIVE_INT });
/** A number > 0 (fractions allowed). */
const positiveNumber = z.number({ error: "expected a positive number" }).positive({
  error: "expected a positive number",
});
/** A retention period: a non-negative number, or `forever` (both 0 and forever keep forever). */
const KEEP = "expected a non-negative number or forever";
const keepPeriod = z.union([
  z.number({ error: KEEP }).min(0, { error: KEEP }),
  z.literal("forever", { error: KEEP }),
], { error: KEEP });
const text = z.string({ error: "expected a string" }).min(1, { error: "expected a string" });
const bool = z.boolean({ error: "expected true or false" });
const list = z.array(text, { error: "expected a list of strings" });
const port = z.int({ error: "expected a port, 0 to 65535" }).min(0, {
  error: "expected a port, 0 to 65535",
}).max(65535, { error: "expected a port, 0 to 65535" });
/** One of a fixed set of words. */
const oneOf = <T extends string>(...words: [T, ...T[]]) =>
  z.enum(words, { error: `expected ${words.join(" or ")}` });

/**
 * Every setting of `arcp serve`, in the order `--help` lists them.
 *
 * @example
 * ```ts
 * import { SERVE_OPTIONS } from "./serve_config.ts";
 * console.log(SERVE_OPTIONS.find((o) => o.flag === "port")?.key); // "port"
 * ```
 */
export const SERVE_OPTIONS = [
  {
    flag: "config",
    type: "string",
    schema: text,
    arg: "FILE",
    env: "ARCP_CONFIG",
    help: "read settings from a JSON file (keys below); flags and env override it",
  },
  {
    flag: "host",
    key: "host",
    type: "string",
    schema: text,
    arg: "HOST",
    env: "ARCP_HOST",
    default: "127.0.0.1",
    help: "interface to listen on",
  },
  {
    flag: "port",
    key: "port",
    type: "number",
    schema: port,
    arg: "PORT",
    env: "ARCP_PORT",
    default: "7777",
    help: "port; 0 picks a free one",
  },
  {
    flag: "kv",
    key: "kv",
    type: "string",
    schema: text,
    arg: "PATH",
    env: "ARCP_KV",
    default: "./data/arcp.kv",
    help: "KV file, :memory:, or a KV Connect URL https://… (token in DENO_KV_ACCESS_TOKEN)",
  },
  {
    flag: "node-id",
    key: "node.id",
    type: "string",
    schema: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, {
      error: "expected 1–64 letters, digits, '.', '_' or '-'",
    }),
    arg: "ID",
    env: "ARCP_NODE_ID",
    default: "generated",
    help: "this node's id among the runtimes sharing the KV",
  },
  {
    flag: "node-url",
    key: "node.url",
    type: "string",
    schema: text,
    arg: "URL",
    default: "the listening URL",
    help: "where clients reach this node (listed to other nodes and operators)",
  },
  {
    flag: "node-lease-ms",
    key: "node.leaseMs",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "10000",
    help: "a node whose record is not renewed for N ms is dead; its jobs end",
  },
  {
    flag: "node-renew-ms",
    key: "node.renewMs",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "2000",
    help: "how often a node renews its record (below --node-lease-ms)",
  },
  {
    flag: "agents",
    key: "agents",
    type: "string",
    schema: text,
    arg: "DIR",
    env: "ARCP_AGENTS",
    default: "./agents",
    help: "folder of agent modules",
  },
  {
    flag: "token",
    key: "tokens",
    type: "list",
    schema: list,
    arg: "TOKEN=PRINCIPAL",
    env: "ARCP_TOKENS",
    default: "generated",
    help: "accept a bearer token (repeatable; env: t1=p1,t2=p2)",
  },
  {
    flag: "tokens-file",
    key: "tokensFile",
    type: "string",
    schema: text,
    arg: "PATH",
    help: "read TOKEN=PRINCIPAL lines from a file, so tokens stay off the command line",
  },
  {
    flag: "jwt-jwks-url",
    key: "auth.jwt.jwksUrl",
    type: "string",
    schema: text,
    arg: "URL",
    help: "accept JWTs signed by a key of this JWKS (https, or http on loopback)",
  },
  {
    flag: "jwt-secret-file",
    key: "auth.jwt.secretFile",
    type: "string",
    schema: text,
    arg: "PATH",
    help: "HS256 JWT secret (32+ bytes) in this file, or env ARCP_JWT_SECRET; never a flag",
  },
  {
    flag: "jwt-issuer",
    key: "auth.jwt.issuer",
    type: "list",
    schema: list,
    arg: "ISS",
    help: "required iss claim (repeatable: any of them)",
  },
  {
    flag: "jwt-audience",
    key: "auth.jwt.audience",
    type: "list",
    schema: list,
    arg: "AUD",
    help: "required aud claim (repeatable: any of them)",
  },
  {
    flag: "jwt-principal-claim",
    key: "auth.jwt.principalClaim",
    type: "string",
    schema: text,
    arg: "CLAIM",
    default: "sub",
    help: "claim naming the principal",
  },
  {
    flag: "jwt-algorithms",
    key: "auth.jwt.algorithms",
    type: "list",
    schema: list,
    arg: "ALG",
    default: "HS256; RS256,ES256 with a JWKS",
    help: "allowed JWT algorithms (repeatable or comma-separated)",
  },
  {
    flag: "allow-anonymous",
    key: "auth.anonymous.allow",
    type: "boolean",
    schema: bool,
    help: "accept auth scheme anonymous (no token): each hello its own principal and caps",
  },
  {
    flag: "anonymous-max-jobs",
    key: "auth.anonymous.maxJobs",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "2",
    help: "live jobs one anonymous principal may have (needs --allow-anonymous)",
  },
  {
    flag: "admin",
    key: "admins",
    type: "list",
    schema: list,
    arg: "PRINCIPAL",
    default: "local, when the token is generated",
    help: "an admin of the management API /v1, who sees and cancels every job (repeatable)",
  },
  {
    flag: "drain-sec",
    key: "drainSec",
    type: "number",
    schema: nonNegativeInt,
    arg: "N",
    default: "30",
    help: "on SIGTERM/SIGINT or POST /v1/runtime/drain, running jobs get N s to finish",
  },
  {
    flag: "stdio",
    key: "stdio",
    type: "boolean",
    schema: bool,
    help: "serve one session on stdin/stdout (logs go to stderr)",
  },
  {
    flag: "skip-store-check",
    key: "skipStoreCheck",
    type: "boolean",
    schema: bool,
    help: "start without checking the KV file first (see arcp doctor)",
  },
  {
    flag: "tls-cert",
    key: "tls.cert",
    type: "string",
    schema: text,
    arg: "FILE",
    help: "serve wss:// with this certificate (PEM); needs --tls-key",
  },
  {
    flag: "tls-key",
    key: "tls.key",
    type: "string",
    schema: text,
    arg: "FILE",
    help: "and this private key (PEM)",
  },
  {
    flag: "log-level",
    key: "log.level",
    type: "string",
    schema: oneOf("debug", "info", "warn", "error"),
    arg: "LEVEL",
    env: "ARCP_LOG_LEVEL",
    default: "info",
    help: "least severe log line written: debug, info, warn or error",
  },
  {
    flag: "log-format",
    key: "log.format",
    type: "string",
    schema: oneOf("text", "json"),
    arg: "FORMAT",
    env: "ARCP_LOG_FORMAT",
    default: "text",
    help: "text lines, or json (one JSON object per line)",
  },
  {
    flag: "heartbeat-sec",
    key: "sessions.heartbeatSec",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "30",
    help: "heartbeat interval when a client negotiates heartbeat",
  },
  {
    flag: "resume-window-sec",
    key: "sessions.resumeWindowSec",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "600",
    help: "how long a detached session stays resumable",
  },
  {
    flag: "hello-timeout-sec",
    key: "sessions.helloTimeoutSec",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "10",
    help: "close a WebSocket that sends no session.hello this long",
  },
  {
    flag: "principal-max-sessions",
    key: "sessions.maxPerPrincipal",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "100",
    help: "live sessions one principal may hold",
  },
  {
    flag: "session-log-hours",
    key: "sessions.logHours",
    type: "number",
    schema: positiveNumber,
    arg: "N",
    default: "24",
    help: "how long a session's event log stays in KV (never less than the resume window)",
  },
  {
    flag: "back-pressure-lag",
    key: "sessions.backPressureLag",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "1000",
    help: "unacknowledged envelopes after which jobs feeding a session get back_pressure",
  },
  {
    flag: "max-connections",
    key: "connections.max",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "(fd limit - 256)/2",
    help: "open connections in all; the oldest not yet upgraded make room for new ones",
  },
  {
    flag: "max-connections-per-addr",
    key: "connections.maxPerAddress",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "half of that",
    help: "open connections from one address",
  },
  {
    flag: "header-timeout-sec",
    key: "connections.headerTimeoutSec",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "10",
    help: "close a connection not upgraded that gets no answer this long",
  },
  {
    flag: "max-frame-kb",
    key: "connections.maxFrameKb",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "1024",
    help: "largest inbound frame; a bigger one closes that socket (1009)",
  },
  {
    flag: "max-socket-buffer-mb",
    key: "connections.maxSocketBufferMb",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "8",
    help: "drop a socket with this much queued to it (its session stays resumable)",
  },
  {
    flag: "pause-buffer-kb",
    key: "connections.pauseBufferKb",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "1024",
    help: "socket buffer above which delivery to it pauses",
  },
  {
    flag: "stall-timeout-sec",
    key: "connections.stallTimeoutSec",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "30",
    help: "close a socket that stays stuck this long",
  },
  {
    flag: "principal-max-jobs",
    key: "quotas.maxJobsPerPrincipal",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "100",
    help: "live jobs one principal may have",
  },
  {
    flag: "job-max-events",
    key: "quotas.maxEventsPerJob",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "100000",
    help: "events one job may commit to its log",
  },
  {
    flag: "job-max-log-mb",
    key: "quotas.maxLogMbPerJob",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "512",
    help: "MiB of events one job may commit to its log",
  },
  {
    flag: "principal-max-events",
    key: "quotas.maxEventsPerPrincipal",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "1000000",
    help: "events one principal's live jobs may have committed together",
  },
  {
    flag: "principal-max-log-mb",
    key: "quotas.maxLogMbPerPrincipal",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "1024",
    help: "MiB one principal's live jobs may have committed together",
  },
  {
    flag: "job-max-children",
    key: "quotas.maxChildrenPerJob",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "16",
    help: "live delegated children one job may have",
  },
  {
    flag: "max-delegation-depth",
    key: "quotas.maxDelegationDepth",
    type: "number",
    schema: nonNegativeInt,
    arg: "N",
    default: "4",
    help: "deepest chain of delegations (a submitted job is depth 0)",
  },
  {
    flag: "result-chunk-kb",
    key: "quotas.resultChunkKb",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "1024",
    help: "largest decoded result chunk",
  },
  {
    flag: "result-max-mb",
    key: "quotas.resultMaxMb",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "256",
    help: "largest streamed result",
  },
  {
    flag: "event-rate",
    key: "quotas.eventRate",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "20000",
    help: "sustained events per second one job may emit",
  },
  {
    flag: "event-burst",
    key: "quotas.eventBurst",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "50000",
    help: "events one job may emit in a burst above that rate",
  },
  {
    flag: "cancel-grace-sec",
    key: "jobs.cancelGraceSec",
    type: "number",
    schema: positiveNumber,
    arg: "N",
    default: "2",
    help: "how long an agent has to stop after a cancel before it is killed",
  },
  {
    flag: "models-without-lease",
    key: "jobs.modelsWithoutLease",
    type: "boolean",
    schema: bool,
    help: "let a job use any model when its lease has no model.use (default: none)",
  },
  {
    flag: "missed-beats",
    key: "jobs.missedBeats",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "5",
    help: "liveness beats an agent may miss in a row before its job ends HEARTBEAT_LOST",
  },
  {
    flag: "beat-interval-ms",
    key: "jobs.beatIntervalMs",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "1000",
    help: "how often an agent's worker beats",
  },
  {
    flag: "start-grace-sec",
    key: "jobs.startGraceSec",
    type: "number",
    schema: positiveNumber,
    arg: "N",
    default: "30",
    help: "grace before the first beat, while the worker loads",
  },
  {
    flag: "sandbox",
    key: "sandbox.mode",
    type: "string",
    schema: oneOf("process", "worker"),
    arg: "MODE",
    default: "process",
    help: "process: each job in a sandbox process with a heap cap; worker: in this process",
  },
  {
    flag: "sandbox-heap-mb",
    key: "sandbox.heapMb",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "512",
    help: "V8 heap cap of each sandbox process",
  },
  {
    flag: "sandbox-memory-mb",
    key: "sandbox.memoryMb",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "RAM/8, 256-4096",
    help: "resident memory ceiling of each sandbox process (ArrayBuffers and wasm count)",
  },
  {
    flag: "warm-pool",
    key: "sandbox.warmPool",
    type: "number",
    schema: nonNegativeInt,
    arg: "N",
    default: "2",
    help: "idle sandbox processes kept ready; 0 starts one per job",
  },
  {
    flag: "warm-max",
    key: "sandbox.warmMax",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "RAM/16 ÷ 64 MiB, 8-32",
    help: "most sandbox processes kept ready, workers started ahead included (~50 MiB each)",
  },
  {
    flag: "jobs-per-process",
    key: "sandbox.jobsPerProcess",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "100",
    help: "jobs one sandbox process serves, one principal and worker key; 1 = a process per job",
  },
  {
    flag: "sandbox-wait-sec",
    key: "sandbox.waitSec",
    type: "number",
    schema: positiveNumber,
    arg: "N",
    default: "10",
    help: "how long a job may wait for a worker at capacity before a retryable sandbox_busy",
  },
  {
    flag: "sandbox-queue-ms",
    key: "sandbox.queueMs",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "250",
    help: "a fresh job expected to wait longer for a worker is refused at submit: sandbox_busy",
  },
  {
    flag: "scan-limit",
    key: "sandbox.scanLimit",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "50000",
    help: "filesystem entries checked for escaping symlinks at job start",
  },
  {
    flag: "allow-npm",
    key: "sandbox.allowNpm",
    type: "boolean",
    schema: bool,
    help: "let agents import npm packages already in Deno's cache",
  },
  {
    flag: "describe-timeout-sec",
    key: "sandbox.describeTimeoutSec",
    type: "number",
    schema: positiveNumber,
    arg: "N",
    default: "10",
    help: "how long one agent module may take to describe itself at start",
  },
  {
    flag: "describe-heap-mb",
    key: "sandbox.describeHeapMb",
    type: "number",
    schema: positiveInt,
    arg: "N",
    default: "256",
    help: "heap cap of the process describing one agent module",
  },
  {
    flag: "job-retention-days",
    key: "retention.jobDays",
    type: "number",
    schema: keepPeriod,
    arg: "N",
    default: "7",
    help: "keep finished jobs (record, list entry, idempotency key); 0 or forever keeps them",
  },
  {
    flag: "job-history-days",
    key: "retention.historyDays",
    type: "number",
    schema: keepPeriod,
    arg: "N",
    default: "7",
    help: "keep finished jobs' event histories, at most as long as the jobs; 0 or forever",
  },
  {
    flag: "audit-retention-days",
    key: "retention.auditDays",
    type: "number",
    schema: keepPeriod,
    arg: "N",
    default: "30",
    help: "keep subscription audit entries; 0 or forever",
  },
  {
    flag: "idempotency-ttl-hours",
    key: "retention.idempotencyHours",
    type: "number",
    schema: positiveNumber,
    arg: "N",
    default: "24",
    help: "how long an idempotency key names its job",
  },
  {
    flag: "sweep-interval-sec",
    key: "retention.sweepIntervalSec",
    type: "number",
    schema: nonNegativeInt,
    arg: "N",
    default: "60",
    help: "time between retention sweeps; 0 turns sweeping off",
  },
  {
    flag: "credentials",
    key: "credentials.kind",
    type: "string",
    schema: oneOf("litellm", "local"),
    arg: "KIND",
    help: "provision per-job credentials: litellm or local",
  },
  {
    flag: "litellm-url",
    key: "credentials.litellmUrl",
    type: "string",
    schema: text,
    arg: "URL",
    help: "LiteLLM admin API (admin key from env ARCP_LITELLM_ADMIN_KEY, never a flag)",
  },
  {
    flag: "litellm-endpoint",
    key: "credentials.litellmEndpoint",
    type: "string",
    schema: text,
    arg: "URL",
    default: "URL/v1",
    help: "URL clients use with the keys",
  },
  {
    flag: "allow-insecure-credentials",
    key: "credentials.allowInsecure",
    type: "boolean",
    schema: bool,
    help: "advertise credentials to loopback peers without TLS (development)",
  },
] as const satisfies readonly ServeOption[];

type Options = typeof SERVE_OPTIONS[number];

/** Every setting's value by flag, typed by its schema; unset ones are absent. */
export type ServeValues = {
  -readonly [O in Options as O["flag"]]?: z.infer<O["schema"]>;
};

/** Everything `arcp serve` needs. */
export interface ServeConfig {
  /** Every setting given by flag, environment or file. */
  values: ServeValues;
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
  /** JWT and anonymous authentication, when configured (tokens stay in `tokens`). */
  auth?: Pick<NonNullable<RuntimeOptions["auth"]>, "jwt" | "anonymous">;
  /** The generated token, when none was configured (printed once at start). */
  generatedToken?: string;
  /** TLS certificate and key files. */
  tls?: { certFile: string; keyFile: string };
  /** The runtime's configuration files (config, tokens, JWT secret, TLS): no lease may reach them. */
  configFiles: string[];
  /** Credential provisioning, when configured. */
  credentials?: {
    kind: "litellm" | "local";
    litellmUrl?: string;
    litellmEndpoint?: string;
    adminKey?: string;
    allowInsecure: boolean;
  };
}

/**
 * A configuration that cannot be used: a bad flag, environment variable or
 * config file. The message is one line naming where (`--port: …`,
 * `arcp.json: quotas.maxEventsPerJob: …`).
 */
export class ServeConfigError extends Error {
  /**
   * @param message one line
   * @param usage whether the usage text helps (a bad flag, not a bad file)
   */
  constructor(message: string, readonly usage = false) {
    super(message);
    this.name = "ServeConfigError";
  }
}

/**
 * Usage text of `arcp serve`, generated from {@linkcode SERVE_OPTIONS}.
 *
 * @returns the text
 */
export function serveUsage(): string {
  const heads = SERVE_OPTIONS.map((o) => `--${o.flag}${"arg" in o ? ` ${o.arg}` : ""}`);
  const width = Math.max(...heads.map((h) => h.length)) + 2;
  const lines = SERVE_OPTIONS.map((o, i) => {
    const notes = [
      "env" in o ? `env ${o.env}` : "",
      "default" in o ? `default ${o.default}` : "",
      "key" in o ? `file: ${o.key}` : "",
    ].filter(Boolean).join("; ");
    return `  ${heads[i].padEnd(width)}${o.help}${notes ? ` (${notes})` : ""}`;
  });
  return [
    "usage: arcp serve [options]",
    ...lines,
    "  -h, --help" + " ".repeat(width - 10) + "print this and exit",
    "Precedence: flag, environment, config file, default. With no token and no JWT configured a",
    "random token is generated and printed. Config file keys are dotted paths into nested objects, e.g.",
    '{"port": 7777, "quotas": {"maxEventsPerJob": 5000}}.',
  ].join("\n");
}

/**
 * The README's options table, generated from {@linkcode SERVE_OPTIONS}
 * (`deno run scripts/serve_options.ts` prints it).
 *
 * @returns a Markdown table
 */
export function serveOptionsTable(): string {
  const rows = SERVE_OPTIONS.map((o) => [
    `\`--${o.flag}${"arg" in o ? ` ${o.arg}` : ""}\``,
    "key" in o ? `\`${o.key}\`` : "",
    "env" in o ? `\`${o.env}\`` : "",
    "default" in o ? `\`${o.default}\`` : "",
    o.help.replaceAll("|", "\\|"),
  ]);
  const head = ["flag", "config key", "env", "default", "meaning"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** The zod schema of the config file, built from the table: nested objects, unknown keys refused. */
function fileSchema(): z.ZodType {
  type Tree = { [k: string]: Tree | z.ZodType };
  const tree: Tree = {};
  for (const o of SERVE_OPTIONS) {
    if (!("key" in o)) continue;
    const parts = o.key.split(".");
    let node = tree;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Tree;
    node[parts.at(-1)!] = o.schema.optional();
  }
  const build = (node: Tree): z.ZodType =>
    z.strictObject(
      Object.fromEntries(
        Object.entries(node).map((
          [k, v],
        ) => [k, v instanceof z.ZodType ? v : build(v).optional()]),
      ),
      { error: "expected an object" },
    );
  return build(tree);
}

/**
 * Reads and validates a config file.
 *
 * @param path the file
 * @returns its settings by flag
 * @throws {ServeConfigError} one line: the file, the key and what is wrong
 */
export async function readConfigFile(path: string): Promise<ServeValues> {
  let raw: string;
  try {
    raw = await Deno.readTextFile(path);
  } catch (err) {
    throw new ServeConfigError(`${path}: cannot read the config file (${(err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new ServeConfigError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  const parsed = fileSchema().safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue.path.join(".");
    const message = issue.code === "unrecognized_keys"
      ? `${[at, issue.keys[0]].filter(Boolean).join(".")}: unknown setting (see arcp serve --help)`
      : `${at || "(top)"}: ${issue.message}`;
    throw new ServeConfigError(`${path}: ${message}`);
  }
  const values: Record<string, unknown> = {};
  for (const o of SERVE_OPTIONS) {
    if (!("key" in o)) continue;
    let v: unknown = parsed.data;
    for (const p of o.key.split(".")) v = (v as Record<string, unknown> | undefined)?.[p];
    if (v !== undefined) values[o.flag] = v;
  }
  return values as ServeValues;
}

/**
 * A flag's or environment variable's text as the option's value.
 *
 * @throws {ServeConfigError} naming the flag and the text
 */
function fromText(o: ServeOption, raw: string | string[] | boolean, where: string): unknown {
  let value: unknown = raw;
  if (o.type === "number" && typeof raw === "string") {
    value = raw === "forever" ? raw : raw.trim() === "" ? NaN : Number(raw);
  }
  const parsed = o.schema.safeParse(value);
  if (!parsed.success) {
    throw new ServeConfigError(
      `${where}: ${parsed.error.issues[0].message}, got ${JSON.stringify(raw)}`,
      where.startsWith("--"),
    );
  }
  return parsed.data;
}

/**
 * Reads every setting: flags, then environment, then the config file.
 *
 * @param args command-line arguments after `serve`
 * @param env environment lookup
 * @returns every setting given, by flag
 * @throws {ServeConfigError} naming the bad flag, variable or file key
 */
export async function readServeValues(
  args: string[],
  env: (name: string) => string | undefined,
): Promise<ServeValues> {
  let flags: Record<string, string | string[] | boolean | undefined>;
  try {
    flags = parseArgs({
      args,
      options: Object.fromEntries(
        SERVE_OPTIONS.map((o) => [
          o.flag,
          { type: o.type === "boolean" ? "boolean" : "string", multiple: o.type === "list" },
        ]),
      ),
      strict: true,
    }).values;
  } catch (err) {
    throw new ServeConfigError((err as Error).message, true);
  }
  const given: Record<string, unknown> = {};
  for (const o of SERVE_OPTIONS as readonly ServeOption[]) {
    const flag = flags[o.flag];
    const fromEnv = o.env === undefined ? undefined : env(o.env);
    if (flag !== undefined) given[o.flag] = fromText(o, flag, `--${o.flag}`);
    else if (fromEnv !== undefined && fromEnv !== "") {
      const raw = o.type === "list" ? fromEnv.split(",").filter((s) => s.trim()) : fromEnv;
      given[o.flag] = fromText(o, raw, o.env!);
    }
  }
  const file = given.config === undefined ? {} : await readConfigFile(given.config as string);
  return { ...file, ...given } as ServeValues;
}

/**
 * Parses `TOKEN=PRINCIPAL` lines (blank lines and `#` comments skipped).
 *
 * @throws {ServeConfigError} on a malformed pair, without echoing it (it holds a token)
 */
function parseTokenPairs(pairs: readonly string[], where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of pairs) {
    const pair = raw.trim();
    if (!pair || pair.startsWith("#")) continue;
    const eq = pair.lastIndexOf("=");
    if (eq <= 0 || eq === pair.length - 1) {
      throw new ServeConfigError(`${where}: expected TOKEN=PRINCIPAL`);
    }
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * Reads the serve configuration.
 *
 * @param args command-line arguments after `serve`
 * @param env environment lookup
 * @returns the configuration
 * @throws {ServeConfigError} with a message naming the bad flag, variable or file key
 * @example
 * ```ts ignore
 * import { readServeConfig } from "./serve_config.ts";
 * const config = await readServeConfig(["--port", "0"], (n) => Deno.env.get(n));
 * console.log(config.port); // 0
 * ```
 */
export async function readServeConfig(
  args: string[],
  env: (name: string) => string | undefined,
): Promise<ServeConfig> {
  const values = await readServeValues(args, env);
  let fileTokens: Record<string, string> = {};
  if (values["tokens-file"] !== undefined) {
    let lines: string[];
    try {
      lines = (await Deno.readTextFile(values["tokens-file"])).split("\n");
    } catch (err) {
      throw new ServeConfigError(
        `--tokens-file ${values["tokens-file"]}: cannot read it (${(err as Error).message})`,
      );
    }
    fileTokens = parseTokenPairs(lines, "--tokens-file");
  }
  const tokens = { ...fileTokens, ...parseTokenPairs(values.token ?? [], "--token") };
  const auth = await readAuth(values, env);
  let generatedToken: string | undefined;
  if (Object.keys(tokens).length === 0 && !auth?.jwt) {
    generatedToken = Array.from(
      crypto.getRandomValues(new Uint8Array(24)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    tokens[generatedToken] = "local";
  }
  let credentials: ServeConfig["credentials"];
  if (values.credentials !== undefined) {
    const adminKey = env("ARCP_LITELLM_ADMIN_KEY");
    if (values.credentials === "litellm" && (!values["litellm-url"] || !adminKey)) {
      throw new ServeConfigError(
        "--credentials litellm needs --litellm-url and ARCP_LITELLM_ADMIN_KEY in the environment",
        true,
      );
    }
    credentials = {
      kind: values.credentials,
      litellmUrl: values["litellm-url"],
      litellmEndpoint: values["litellm-endpoint"],
      adminKey,
      allowInsecure: values["allow-insecure-credentials"] ?? false,
    };
  }
  if (!!values["tls-cert"] !== !!values["tls-key"]) {
    throw new ServeConfigError("--tls-cert and --tls-key go together", true);
  }
  if ((values["node-renew-ms"] ?? 2000) >= (values["node-lease-ms"] ?? 10_000)) {
    throw new ServeConfigError("--node-renew-ms must be below --node-lease-ms", true);
  }
  return {
    values,
    host: values.host ?? "127.0.0.1",
    port: values.port ?? 7777,
    kvPath: values.kv ?? "./data/arcp.kv",
    agentsDir: values.agents ?? "./agents",
    tokens,
    auth,
    generatedToken,
    credentials,
    configFiles: [
      values.config,
      values["tokens-file"],
      values["jwt-secret-file"],
      values["tls-cert"],
      values["tls-key"],
    ].filter((f): f is string => f !== undefined),
    tls: values["tls-cert"]
      ? { certFile: values["tls-cert"], keyFile: values["tls-key"]! }
      : undefined,
  };
}

/**
 * The JWT and anonymous options of the settings. The HS256 secret comes from
 * a file or the environment, never from a flag, where `ps` would show it.
 *
 * @param values the settings
 * @param env environment lookup
 * @returns the options, or undefined when neither is configured
 * @throws {ServeConfigError} naming the bad flag
 */
async function readAuth(
  values: ServeValues,
  env: (name: string) => string | undefined,
): Promise<ServeConfig["auth"]> {
  let secret: string | undefined;
  const secretFile = values["jwt-secret-file"];
  if (secretFile !== undefined) {
    try {
      secret = (await Deno.readTextFile(secretFile)).trim();
    } catch (err) {
      throw new ServeConfigError(
        `--jwt-secret-file ${secretFile}: cannot read it (${(err as Error).message})`,
      );
    }
  } else {
    secret = env("ARCP_JWT_SECRET") || undefined;
  }
  const jwksUrl = values["jwt-jwks-url"];
  const jwtFlags = ["jwt-issuer", "jwt-audience", "jwt-principal-claim", "jwt-algorithms"] as const;
  if (secret === undefined && jwksUrl === undefined) {
    const stray = jwtFlags.find((f) => values[f] !== undefined);
    if (stray) {
      throw new ServeConfigError(
        `--${stray} needs --jwt-jwks-url, --jwt-secret-file or ARCP_JWT_SECRET`,
        true,
      );
    }
  }
  const one = (v: string[] | undefined) => v === undefined || v.length > 1 ? v : v[0];
  const jwt = secret === undefined && jwksUrl === undefined ? undefined : {
    secret,
    jwksUrl,
    issuer: one(values["jwt-issuer"]),
    audience: one(values["jwt-audience"]),
    principalClaim: values["jwt-principal-claim"],
    algorithms: values["jwt-algorithms"]?.flatMap((a) => a.split(",")).map((a) => a.trim())
      .filter(Boolean),
  };
  const maxJobs = values["anonymous-max-jobs"];
  if (maxJobs !== undefined && !values["allow-anonymous"]) {
    throw new ServeConfigError("--anonymous-max-jobs needs --allow-anonymous", true);
  }
  const anonymous = values["allow-anonymous"]
    ? maxJobs === undefined ? true : { maxLiveJobs: maxJobs }
    : undefined;
  if (!jwt && !anonymous) return undefined;
  const auth = { ...(jwt ? { jwt } : {}), ...(anonymous ? { anonymous } : {}) };
  try {
    checkAuthOptions(auth);
  } catch (err) {
    throw new ServeConfigError((err as Error).message, true);
  }
  return auth;
}

const KIB = 1024;
const MIB = 1024 * KIB;
const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;

/** A value scaled to the runtime's unit, or undefined when unset. */
function scaled(v: number | undefined, unit: number): number | undefined {
  return v === undefined ? undefined : Math.round(v * unit);
}

/** A retention period as milliseconds; 0 and `forever` both keep forever (0). */
function keptMs(v: number | "forever" | undefined, unit: number): number | undefined {
  return v === undefined ? undefined : v === "forever" ? 0 : Math.round(v * unit);
}

/**
 * Leaves unset settings out, so the defaults under them apply.
 *
 * @param settings settings, some unset
 * @returns the set ones
 */
export function definedOnly<T extends object>(settings: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(settings).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

/**
 * The library options the settings amount to (everything but what only
 * `serve.ts` knows: listeners, provisioner, logger).
 *
 * @param config the configuration
 * @returns options for `createRuntime`; unset settings keep the runtime's defaults
 */
export function toRuntimeOptions(
  config: ServeConfig,
): Omit<RuntimeOptions, "credentials" | "logger" | "listeners"> {
  const v = config.values;
  const nested = <T extends object>(o: T): Partial<T> | undefined => {
    const d = definedOnly(o);
    return Object.keys(d).length > 0 ? d : undefined;
  };
  return definedOnly({
    kvPath: config.kvPath,
    agentsDir: config.agentsDir,
    tokens: config.tokens,
    auth: config.auth,
    // The generated token's principal is the operator at the keyboard.
    adminPrincipals: v.admin ?? (config.generatedToken ? ["local"] : []),
    drainSec: v["drain-sec"],
    deployment: {
      host: v.stdio ? undefined : config.host,
      tls: config.tls !== undefined,
      generatedToken: config.generatedToken !== undefined,
    },
    storeCheck: !v["skip-store-check"],
    heartbeatSec: v["heartbeat-sec"],
    node: nested({
      id: v["node-id"],
      url: v["node-url"],
      leaseMs: v["node-lease-ms"],
      renewMs: v["node-renew-ms"],
    }),
    sessions: nested({
      resumeWindowSec: v["resume-window-sec"],
      helloTimeoutSec: v["hello-timeout-sec"],
      maxSessionsPerPrincipal: v["principal-max-sessions"],
    }),
    logTtlMs: scaled(v["session-log-hours"], HOUR_MS),
    backPressureLag: v["back-pressure-lag"],
    maxFrameBytes: scaled(v["max-frame-kb"], KIB),
    maxSocketBytes: scaled(v["max-socket-buffer-mb"], MIB),
    maxBufferedBytes: scaled(v["pause-buffer-kb"], KIB),
    stallTimeoutMs: scaled(v["stall-timeout-sec"], 1000),
    jobs: nested({
      maxJobsPerPrincipal: v["principal-max-jobs"],
      maxEventsPerJob: v["job-max-events"],
      maxLogBytesPerJob: scaled(v["job-max-log-mb"], MIB),
      maxEventsPerPrincipal: v["principal-max-events"],
      maxLogBytesPerPrincipal: scaled(v["principal-max-log-mb"], MIB),
      maxChildrenPerJob: v["job-max-children"],
      maxDelegationDepth: v["max-delegation-depth"],
      resultChunkBytes: scaled(v["result-chunk-kb"], KIB),
      resultTotalBytes: scaled(v["result-max-mb"], MIB),
      cancelGraceMs: scaled(v["cancel-grace-sec"], 1000),
      requireModelLease: v["models-without-lease"] === undefined
        ? undefined
        : !v["models-without-lease"],
      idempotencyTtlMs: scaled(v["idempotency-ttl-hours"], HOUR_MS),
    }),
    liveness: nested({
      eventRate: v["event-rate"],
      eventBurst: v["event-burst"],
      missedBeats: v["missed-beats"],
      beatIntervalMs: v["beat-interval-ms"],
      startGraceMs: scaled(v["start-grace-sec"], 1000),
      scanLimit: v["scan-limit"],
    }),
    describe: nested({
      timeoutMs: scaled(v["describe-timeout-sec"], 1000),
      heapMb: v["describe-heap-mb"],
    }),
    sandbox: v.sandbox,
    hostHeapMb: v["sandbox-heap-mb"],
    memoryMb: v["sandbox-memory-mb"],
    warmPool: v["warm-pool"],
    warmMax: v["warm-max"],
    jobsPerProcess: v["jobs-per-process"],
    sandboxWaitMs: scaled(v["sandbox-wait-sec"], 1000),
    sandboxQueueMs: v["sandbox-queue-ms"],
    allowNpm: v["allow-npm"],
    jobRetentionMs: keptMs(v["job-retention-days"], DAY_MS),
    jobHistoryTtlMs: keptMs(v["job-history-days"], DAY_MS),
    auditRetentionMs: keptMs(v["audit-retention-days"], DAY_MS),
    sweepIntervalMs: scaled(v["sweep-interval-sec"], 1000),
    denyPaths: config.configFiles.map((f) => (f.startsWith("/") ? f : `${Deno.cwd()}/${f}`)),
  }) as Omit<RuntimeOptions, "credentials" | "logger" | "listeners">;
}

/**
 * The logging settings.
 *
 * @param config the configuration
 * @returns level and format
 */
export function logSettings(config: ServeConfig): { level: LogSeverity; format: LogFormat } {
  return {
    level: config.values["log-level"] ?? "info",
    format: config.values["log-format"] ?? "text",
  };
}

/**
 * The gate's connection limits that were set.
 *
 * @param config the configuration
 * @returns the limits given; the rest follow the fd limit
 */
export function gateSettings(
  config: ServeConfig,
): { maxConnections?: number; maxConnectionsPerAddress?: number; headerTimeoutMs?: number } {
  const v = config.values;
  return definedOnly({
    maxConnections: v["max-connections"],
    maxConnectionsPerAddress: v["max-connections-per-addr"],
    headerTimeoutMs: scaled(v["header-timeout-sec"], 1000),
  });
}
