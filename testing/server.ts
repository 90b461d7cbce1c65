/**
 * Test servers: the real runtime behind a real `Deno.serve` on a free
 * loopback port, with its KV file in a fresh temp dir; or the real CLI as a
 * child process (for restart and crash tests).
 *
 * @module
 */
import { createRuntime, type Runtime, type RuntimeOptions } from "../mod.ts";
import { RUN_ENV, RUN_FLAGS } from "../src/cli/flags.ts";
import { silentLogger } from "../src/logger.ts";
import {
  DEFAULT_GATE_LIMITS,
  type GatedServer,
  type GateLimits,
  serveGated,
} from "../src/transport/gate.ts";
import { HEALTH_PATHS, WEBSOCKET_PATH } from "../src/http.ts";
import { serveLoopback } from "./loopback.ts";

/** The project root. */
export const ROOT: string = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** `deno` arguments that run the CLI with exactly the permissions the `serve` task grants. */
export const CLI_RUN: readonly string[] = [
  "run",
  ...RUN_FLAGS,
  `${ROOT}/src/cli/main.ts`,
];

/** Tokens every test server accepts. */
export const TOKENS: Record<string, string> = { "alice-token": "alice", "bob-token": "bob" };

/** A running in-process test server. */
export interface TestServer {
  /** `ws://127.0.0.1:PORT/arcp`. */
  url: string;
  /** `http://127.0.0.1:PORT`. */
  http: string;
  /** The runtime. */
  runtime: Runtime;
  /** The connection gate it is served behind. */
  gate: GatedServer;
  /** Temp dir holding the KV file. */
  dir: string;
  /** The KV file. */
  kvPath: string;
  /** Stops the server; keeps the KV file unless `remove` is true. */
  close(remove?: boolean): Promise<void>;
  /** Alias of close(true), so `await using` cleans up. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts the runtime in this process on a free port, behind the connection
 * gate as `arcp serve` runs it.
 *
 * @param options overrides (kvPath reuses an existing KV file)
 * @param gate connection limits other than the defaults
 * @returns the server
 */
export async function startServer(
  options: Partial<RuntimeOptions> = {},
  gate: Partial<GateLimits> = {},
): Promise<TestServer> {
  const { runtime, dir, kvPath } = await openRuntime(options);
  const server = serveGated({
    hostname: "127.0.0.1",
    port: 0,
    limits: { ...DEFAULT_GATE_LIMITS, ...gate },
    log: silentLogger(),
    webSocketPaths: [WEBSOCKET_PATH],
    directPaths: HEALTH_PATHS,
  }, runtime.fetch);
  return {
    ...handle(runtime, dir, kvPath, server.addr.port, () => server.shutdown()),
    gate: server,
  };
}

/**
 * Starts the runtime in this process on a free port with its `fetch` served
 * by `Deno.serve` directly, as an embedder may run it: one TCP hop between
 * client and session, so what a client leaves unread backs up into the
 * session's own socket within the kernel's buffers of that one hop.
 *
 * @param options overrides (kvPath reuses an existing KV file)
 * @returns the server
 */
export async function startDirectServer(
  options: Partial<RuntimeOptions> = {},
): Promise<Omit<TestServer, "gate">> {
  const { runtime, dir, kvPath } = await openRuntime(options);
  const server = serveLoopback(runtime.fetch);
  return handle(runtime, dir, kvPath, server.port, server.close);
}

async function openRuntime(
  options: Partial<RuntimeOptions>,
): Promise<{ runtime: Runtime; dir: string; kvPath: string }> {
  const dir = options.kvPath
    ? options.kvPath.replace(/\/[^/]*$/, "")
    : await Deno.makeTempDir({ prefix: "arcp_test_" });
  const kvPath = options.kvPath ?? `${dir}/arcp.kv`;
  const runtime = await createRuntime({
    agentsDir: `${ROOT}/agents`,
    tokens: TOKENS,
    logger: silentLogger(),
    // Whether a fresh job is refused at submit for its expected wait depends on the host's
    // speed (a loaded CI host refused bursts of tests about other things); tests of that
    // refusal set their own.
    sandboxQueueMs: 60_000,
    ...options,
    kvPath,
  });
  return { runtime, dir, kvPath };
}

function handle(
  runtime: Runtime,
  dir: string,
  kvPath: string,
  port: number,
  stop: () => Promise<void>,
): Omit<TestServer, "gate"> {
  let closed = false;
  const close = async (remove = false) => {
    if (!closed) {
      closed = true;
      await runtime.close();
      await stop();
    }
    if (remove) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return {
    url: `ws://127.0.0.1:${port}/arcp`,
    http: `http://127.0.0.1:${port}`,
    runtime,
    dir,
    kvPath,
    close,
    [Symbol.asyncDispose]: () => close(true),
  };
}

/** The runtime running as a child process through the real CLI. */
export interface ChildServer {
  /** `ws://127.0.0.1:PORT/arcp`. */
  url: string;
  /** The process. */
  process: Deno.ChildProcess;
  /** Everything it printed on stdout and stderr so far. */
  output(): string;
  /** Sends a signal and waits for the exit. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/**
 * Starts `arcp serve` as a child process with exactly the given `serve`
 * flags and waits for the `listening on ws(s)://…/arcp` line.
 *
 * @param serveArgs flags after `serve`
 * @param env extra environment variables for the child, over `RUN_ENV`
 * @param fdLimit a lower soft limit on the child's open files (`ulimit -n`)
 * @param root the checkout whose CLI runs (default this one; a bench may A/B another)
 * @param denoFlags more `deno run` flags (a bench's `--inspect=127.0.0.1:0`)
 * @returns the child server
 */
export async function spawnServe(
  serveArgs: string[],
  env: Record<string, string> = {},
  fdLimit?: number,
  root: string = ROOT,
  denoFlags: readonly string[] = [],
): Promise<ChildServer> {
  const cli = root === ROOT ? CLI_RUN : ["run", ...RUN_FLAGS, `${root}/src/cli/main.ts`];
  const args = [cli[0], ...denoFlags, ...cli.slice(1), "serve", ...serveArgs];
  const process = new Deno.Command(fdLimit === undefined ? Deno.execPath() : "sh", {
    args: fdLimit === undefined
      ? args
      : ["-c", `ulimit -n ${fdLimit} && exec "$0" "$@"`, Deno.execPath(), ...args],
    env: { ...RUN_ENV, ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) out += chunk;
  };
  const pumps = Promise.all([pump(process.stdout), pump(process.stderr)]);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const m = out.match(/listening on (wss?:\/\/\S+\/arcp)/);
    if (m) {
      return {
        url: m[1],
        process,
        output: () => out,
        async stop(signal: Deno.Signal = "SIGTERM") {
          try {
            process.kill(signal);
          } catch {
            // already gone
          }
          const status = await process.status;
          await pumps;
          return status;
        },
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  process.kill("SIGKILL");
  throw new Error(`child server did not start:\n${out}`);
}

/**
 * Starts `arcp serve` as a child process on a KV file, with the test tokens
 * and the reference agents, and waits for its URL.
 *
 * @param kvPath the KV file
 * @param extraArgs more `serve` flags
 * @param env extra environment variables for the child
 * @param fdLimit a lower soft limit on the child's open files (`ulimit -n`)
 * @param denoFlags more `deno run` flags (a bench's `--inspect=127.0.0.1:0`)
 * @returns the child server
 */
export function startChildServer(
  kvPath: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
  fdLimit?: number,
  denoFlags: readonly string[] = [],
): Promise<ChildServer> {
  return spawnServe(
    [
      "--port",
      "0",
      "--kv",
      kvPath,
      "--agents",
      `${ROOT}/agents`,
      ...Object.entries(TOKENS).flatMap(([t, p]) => ["--token", `${t}=${p}`]),
      ...extraArgs,
    ],
    env,
    fdLimit,
    ROOT,
    denoFlags,
  );
}

/**
 * Waits until a runtime reports no live jobs on `/healthz`.
 *
 * @param http the runtime's `http://host:port` base
 * @param ms how long to wait before giving up
 * @throws {Error} when jobs are still live after `ms`
 * @example
 * ```ts ignore
 * await untilIdle(server.http);
 * ```
 */
export async function untilIdle(http: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const health = await fetch(`${http}/healthz`).then((r) => r.json());
    if (health.live_jobs === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`jobs still live after ${ms} ms`);
}
