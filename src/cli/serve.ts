/**
 * `arcp serve`: runs the runtime on a port (or on stdio). SIGTERM or SIGINT
 * drains it (no new jobs; running ones get `--drain-sec` to finish, then
 * end `INTERNAL_ERROR`, their sessions told), as `POST /v1/runtime/drain`
 * does, and then it exits 0; a second signal stops the drain at once.
 *
 * @module
 */
import {
  createRuntime,
  type GatedServer,
  gateLimitsFor,
  HEALTH_PATHS,
  type Runtime,
  type RuntimeOptions,
  serveGated,
  StartRefusedError,
  StoreDamageError,
  WEBSOCKET_PATH,
} from "../runtime.ts";
import { type Logger, stderrLogger } from "../logger.ts";
import { LiteLlmProvisioner } from "../credentials/litellm_provisioner.ts";
import { LocalProvisioner } from "../credentials/local_provisioner.ts";
import {
  gateSettings,
  logSettings,
  readServeConfig,
  type ServeConfig,
  ServeConfigError,
  serveUsage,
  toRuntimeOptions,
} from "./serve_config.ts";

/**
 * A start-up failure already put into words: `serve` prints it as one line
 * and exits 1.
 */
class StartError extends Error {}

/**
 * Runs `arcp serve`. Every start-up failure is one line on stderr and exit
 * code 1 (2 for a bad flag), never a stack trace.
 *
 * @param args arguments after `serve`
 * @returns the process exit code
 */
export async function serve(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(serveUsage());
    return 0;
  }
  let config: ServeConfig;
  try {
    config = await readServeConfig(args, (n) => Deno.env.get(n));
  } catch (err) {
    if (!(err instanceof ServeConfigError)) throw err;
    console.error(`arcp serve: ${err.message}${err.usage ? " (see arcp serve --help)" : ""}`);
    return err.usage ? 2 : 1;
  }
  const log = stderrLogger(logSettings(config));
  try {
    return await run(config, log);
  } catch (err) {
    console.error(`arcp serve: ${startFailure(err, config)}`);
    return 1;
  }
}

/**
 * Starts the runtime and serves until SIGINT or SIGTERM.
 *
 * @param config the configuration
 * @param log the operator log
 * @returns the exit code
 * @throws whatever stopped the start
 */
async function run(config: ServeConfig, log: Logger): Promise<number> {
  await checkAgentsDir(config.agentsDir);
  if (config.kvPath !== ":memory:" && !/^https?:\/\//i.test(config.kvPath)) {
    const dir = config.kvPath.replace(/\/[^/]*$/, "");
    if (dir && dir !== config.kvPath) {
      try {
        await Deno.mkdir(dir, { recursive: true });
      } catch (err) {
        throw new StartError(
          `cannot create the KV folder ${dir} (${
            (err as Error).message
          }); choose another with --kv`,
        );
      }
    }
  }
  // In stdio mode stdout carries the protocol, so every human line goes to stderr.
  const say = config.values.stdio ? console.error : console.log;
  const skipped: string[] = [];
  const options: RuntimeOptions = {
    ...toRuntimeOptions(config),
    logger: log,
    onSkippedAgent: (path, reason) => skipped.push(`${path}: ${reason}`),
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
  const summary = (runtime: Runtime, url: string) => {
    say(`arcp serve ${url}`);
    say(`  kv:      ${config.kvPath}`);
    say(`  sandbox: ${options.sandbox ?? "process"}`);
    const agents = runtime.inventory().map((a) => `${a.name}@${a.versions.join(",")}`);
    say(`  agents:  ${agents.length > 0 ? agents.join(" ") : `none in ${config.agentsDir}`}`);
    for (const line of skipped) say(`  skipped: ${line}`);
    if (config.generatedToken) {
      say(
        `token: ${config.generatedToken} (principal "local"; pass --token TOKEN=PRINCIPAL to choose your own)`,
      );
    }
  };

  if (config.values.stdio) {
    const runtime = await createRuntime(options);
    summary(runtime, "stdio");
    await runtime.serveStdio(Deno.stdin.readable, Deno.stdout.writable);
    await runtime.close();
    return 0;
  }

  const tls = config.tls
    ? { cert: await readTls(config.tls.certFile), key: await readTls(config.tls.keyFile) }
    : undefined;
  // Listen before the runtime exists, so it knows its own addresses (port 0
  // included) and can keep every agent off them; until then requests get 503.
  // The gate, not Deno.serve, faces clients: it caps connections below the fd
  // limit and survives accept errors (see src/transport/gate.ts).
  let runtime: Runtime | undefined;
  let server: GatedServer;
  try {
    server = serveGated(
      {
        hostname: config.host,
        port: config.port,
        tls,
        limits: { ...gateLimitsFor(await fdLimit()), ...gateSettings(config) },
        log,
        webSocketPaths: [WEBSOCKET_PATH],
        directPaths: HEALTH_PATHS,
      },
      (req, info) => runtime ? runtime.fetch(req, info) : new Response("starting", { status: 503 }),
    );
  } catch (err) {
    throw new StartError(listenFailure(err, config));
  }
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
    throw err;
  }
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  const url = `${config.tls ? "wss" : "ws"}://${host}:${port}/arcp`;
  summary(runtime, url);
  // The line scripts and tests wait for; the summary above is for people.
  say(`listening on ${url}`);
  const live = runtime;
  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    stopping ??= (async () => {
      log.info("shutting down");
      await live.close();
      await server.shutdown();
    })();
  // However the drain started (a signal, POST /v1/runtime/drain), its end stops the process.
  void live.drained.then(shutdown);
  let signals = 0;
  const onSignal = () => {
    if (++signals === 1) {
      const { deadline } = live.drain();
      log.warn("draining: new jobs are refused; running jobs may finish until the deadline", {
        deadline,
        hint: "signal again to stop now",
      });
      return;
    }
    log.warn("stopping now: ending running jobs");
    // Jobs are ended durably where storage allows (the drain's end then
    // stops the process); a stuck store does not hold the exit.
    void live.drainNow();
    Deno.unrefTimer(setTimeout(shutdown, STOP_NOW_MS));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  await server.finished;
  return 0;
}

/** How long a second signal waits for running jobs' terminals before the process goes (ms). */
const STOP_NOW_MS = 3000;

/**
 * Refuses a missing agents folder before anything starts.
 *
 * @param dir the agents folder
 * @throws {StartError} when it is missing or not a folder
 */
async function checkAgentsDir(dir: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "does not exist" : (err as Error).message;
    throw new StartError(`agents folder ${dir} ${why}; pass --agents DIR`);
  }
  if (!info.isDirectory) {
    throw new StartError(`agents folder ${dir} is not a folder; pass --agents DIR`);
  }
}

/**
 * Reads a TLS file.
 *
 * @param path the PEM file
 * @returns its text
 * @throws {StartError} naming the file when it cannot be read
 */
async function readTls(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new StartError(`TLS file ${path}: ${(err as Error).message}`);
  }
}

/**
 * Why listening failed, in words.
 *
 * @param err what `Deno.listen` threw
 * @param config the configuration
 * @returns one line
 */
function listenFailure(err: unknown, config: ServeConfig): string {
  const where = `${config.host}:${config.port}`;
  if (err instanceof Deno.errors.AddrInUse) {
    return `port ${config.port} on ${config.host} is already in use (another arcp serve?); ` +
      `stop it or choose another port with --port (0 picks a free one)`;
  }
  if (err instanceof Deno.errors.InvalidData && config.tls) {
    return `TLS files ${config.tls.certFile} and ${config.tls.keyFile} are not a PEM certificate ` +
      `and its key (${(err as Error).message})`;
  }
  const message = (err as Error).message;
  if (
    /lookup address|AddrNotAvailable|assign requested address/i.test(message) ||
    err instanceof Deno.errors.AddrNotAvailable
  ) {
    return `cannot listen on ${where}: ${message}; check --host`;
  }
  return `cannot listen on ${where}: ${message}`;
}

/**
 * A start-up failure as one line.
 *
 * @param err what stopped the start
 * @param config the configuration
 * @returns the line, without the `arcp serve:` prefix
 */
function startFailure(err: unknown, config: ServeConfig): string {
  if (err instanceof StartError || err instanceof StartRefusedError) return err.message;
  if (err instanceof StoreDamageError) {
    return `${err.message.replace(/^storage: /, "")}; ` +
      `list the damage with \`arcp doctor --kv ${config.kvPath}\` and see "Backups and damage" in the README`;
  }
  const message = firstLine(err);
  if (/defined twice/.test(message)) return `${message}; remove or rename one of them`;
  if (err instanceof Deno.errors.NotADirectory || err instanceof Deno.errors.PermissionDenied) {
    return `cannot open the KV file ${config.kvPath}: ${message}; choose another with --kv`;
  }
  return `cannot start: ${message}`;
}

/**
 * The first line of an error's message, without a stack.
 *
 * @param err what was thrown
 * @returns one line
 */
function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split("\n")[0].trim();
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
