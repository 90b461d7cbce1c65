/**
 * `arcp serve`: runs the runtime on a port (or on stdio) until SIGINT or
 * SIGTERM, then shuts down gracefully.
 *
 * @module
 */
import {
  createRuntime,
  gateLimitsFor,
  type Runtime,
  type RuntimeOptions,
  serveGated,
  StartRefusedError,
  StoreDamageError,
} from "../runtime.ts";
import { stderrLogger } from "../logger.ts";
import { LiteLlmProvisioner } from "../credentials/litellm_provisioner.ts";
import { LocalProvisioner } from "../credentials/local_provisioner.ts";
import { readServeConfig, SERVE_USAGE } from "./serve_config.ts";

/**
 * Runs `arcp serve`.
 *
 * @param args arguments after `serve`
 * @returns the process exit code
 */
export async function serve(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(SERVE_USAGE);
    return 0;
  }
  let config;
  try {
    config = await readServeConfig(args, (n) => Deno.env.get(n));
  } catch (err) {
    console.error(`arcp serve: ${(err as Error).message}\n${SERVE_USAGE}`);
    return 2;
  }
  if (config.kvPath !== ":memory:" && !/^https?:\/\//i.test(config.kvPath)) {
    const dir = config.kvPath.replace(/\/[^/]*$/, "");
    if (dir && dir !== config.kvPath) await Deno.mkdir(dir, { recursive: true });
  }
  // In stdio mode stdout carries the protocol, so every human line goes to stderr.
  const say = config.stdio ? console.error : console.log;
  const options: RuntimeOptions = {
    kvPath: config.kvPath,
    storeCheck: !config.skipStoreCheck,
    agentsDir: config.agentsDir,
    tokens: config.tokens,
    sessions: definedOnly({
      resumeWindowSec: config.resumeWindowSec,
      helloTimeoutSec: config.helloTimeoutSec,
      maxSessionsPerPrincipal: config.maxSessionsPerPrincipal,
    }),
    jobs: definedOnly({ ...config.quotas, idempotencyTtlMs: config.retention.idempotencyTtlMs }),
    ...definedOnly({
      maxSocketBytes: config.maxSocketBytes,
      ...config.sandbox,
      jobRetentionMs: config.retention.jobRetentionMs,
      jobHistoryTtlMs: config.retention.jobHistoryTtlMs,
      auditRetentionMs: config.retention.auditRetentionMs,
    }),
    heartbeatSec: config.heartbeatSec,
    node: config.node,
    denyPaths: config.configFiles.map((f) => (f.startsWith("/") ? f : `${Deno.cwd()}/${f}`)),
    credentials: config.credentials && {
      provisioner: config.credentials.kind === "litellm"
        ? new LiteLlmProvisioner({
          adminUrl: config.credentials.litellmUrl!,
          adminKey: config.credentials.adminKey!,
          endpoint: config.credentials.litellmEndpoint,
        })
        : new LocalProvisioner(),
      allowInsecure: config.credentials.allowInsecure,
    },
  };
  const tokenLine = () => {
    if (config.generatedToken) {
      say(
        `token: ${config.generatedToken} (principal "local"; pass --token TOKEN=PRINCIPAL to choose your own)`,
      );
    }
  };

  if (config.stdio) {
    let runtime: Runtime;
    try {
      runtime = await createRuntime(options);
    } catch (err) {
      return refuseStart(err, config.kvPath);
    }
    tokenLine();
    await runtime.serveStdio(Deno.stdin.readable, Deno.stdout.writable);
    await runtime.close();
    return 0;
  }

  const tls = config.tls
    ? {
      cert: await Deno.readTextFile(config.tls.certFile),
      key: await Deno.readTextFile(config.tls.keyFile),
    }
    : undefined;
  // Listen before the runtime exists, so it knows its own addresses (port 0
  // included) and can keep every agent off them; until then requests get 503.
  // The gate, not Deno.serve, faces clients: it caps connections below the fd
  // limit and survives accept errors (see src/transport/gate.ts).
  let runtime: Runtime | undefined;
  const server = serveGated({
    hostname: config.host,
    port: config.port,
    tls,
    limits: { ...gateLimitsFor(await fdLimit()), ...definedOnly(config.gate) },
    log: stderrLogger(),
  }, (req, info) => runtime ? runtime.fetch(req, info) : new Response("starting", { status: 503 }));
  const { hostname, port } = server.addr;
  try {
    const scheme = config.tls ? "wss" : "ws";
    const at = hostname.includes(":") ? `[${hostname}]` : hostname;
    runtime = await createRuntime({
      ...options,
      node: { url: `${scheme}://${at}:${port}/arcp`, ...options.node },
      listeners: [{ hostname, port }, server.inner],
    });
  } catch (err) {
    await server.shutdown();
    return refuseStart(err, config.kvPath);
  }
  tokenLine();
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  say(`listening on ${config.tls ? "wss" : "ws"}://${host}:${port}/arcp`);
  const stop = () => {
    console.error("shutting down");
    runtime.close().finally(() => server.shutdown());
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
  return 0;
}

/**
 * A start that failed: a damaged or unreadable store is one line naming the
 * file and the problem, and exit 1; anything else is thrown on.
 *
 * @param err why the runtime could not start
 * @param kvPath the KV file
 * @returns the exit code
 */
function refuseStart(err: unknown, kvPath: string): number {
  if (err instanceof StartRefusedError) {
    console.error(`arcp serve: ${err.message}`);
    return 1;
  }
  if (!(err instanceof StoreDamageError)) throw err;
  console.error(
    `arcp serve: ${err.message.replace(/^storage: /, "")}; ` +
      `list the damage with \`arcp doctor --kv ${kvPath}\` and see "Backups and damage" in the README`,
  );
  return 1;
}

/**
 * Leaves unset settings out, so the defaults under them apply.
 *
 * @param settings settings, some unset
 * @returns the set ones
 */
function definedOnly<T extends object>(settings: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(settings).filter(([, v]) => v !== undefined),
  ) as Partial<T>;
}

/**
 * The process's soft limit on open files, which the connection caps stay
 * below. Deno reads `/proc/self/limits` only with `--allow-all`, so a shell
 * (which inherits the limit) reports it.
 *
 * @returns it, or undefined when no shell could tell
 */
async function fdLimit(): Promise<number | undefined> {
  try {
    const out = await new Deno.Command("sh", { args: ["-c", "ulimit -Sn"], stderr: "null" })
      .output();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    return out.success && Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}
