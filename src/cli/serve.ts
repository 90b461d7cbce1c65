/**
 * `arcp serve`: runs the runtime on a port (or on stdio) until SIGINT or
 * SIGTERM, then shuts down gracefully.
 *
 * @module
 */
import { createRuntime, type Runtime, type RuntimeOptions } from "../runtime.ts";
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
  if (config.kvPath !== ":memory:") {
    const dir = config.kvPath.replace(/\/[^/]*$/, "");
    if (dir && dir !== config.kvPath) await Deno.mkdir(dir, { recursive: true });
  }
  // In stdio mode stdout carries the protocol, so every human line goes to stderr.
  const say = config.stdio ? console.error : console.log;
  const options: RuntimeOptions = {
    kvPath: config.kvPath,
    agentsDir: config.agentsDir,
    tokens: config.tokens,
    sessions: { resumeWindowSec: config.resumeWindowSec },
    // Unset quotas are left out, so the runtime's defaults apply.
    jobs: Object.fromEntries(
      Object.entries(config.quotas).filter(([, v]) => v !== undefined),
    ),
    heartbeatSec: config.heartbeatSec,
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
    const runtime = await createRuntime(options);
    tokenLine();
    await runtime.serveStdio(Deno.stdin.readable, Deno.stdout.writable);
    await runtime.close();
    return 0;
  }

  const ac = new AbortController();
  const tls = config.tls
    ? {
      cert: await Deno.readTextFile(config.tls.certFile),
      key: await Deno.readTextFile(config.tls.keyFile),
    }
    : {};
  // Listen before the runtime exists, so it knows its own address (port 0
  // included) and can keep every agent off it; until then requests get 503.
  let runtime: Runtime | undefined;
  const bound = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    signal: ac.signal,
    ...tls,
    onListen: bound.resolve,
  }, (req, info) => runtime ? runtime.fetch(req, info) : new Response("starting", { status: 503 }));
  const { hostname, port } = await bound.promise;
  try {
    runtime = await createRuntime({ ...options, listeners: [{ hostname, port }] });
  } catch (err) {
    ac.abort();
    await server.finished;
    throw err;
  }
  tokenLine();
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  say(`listening on ${config.tls ? "wss" : "ws"}://${host}:${port}/arcp`);
  const stop = () => {
    console.error("shutting down");
    runtime.close().finally(() => ac.abort());
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
  return 0;
}
