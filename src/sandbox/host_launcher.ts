/**
 * Runs agent workers inside supervised sandbox host processes: one process
 * per principal, started on demand, with a V8 heap cap and Deno
 * permissions that deny the runtime's own state. When a host dies (an agent
 * exhausted its heap, or anything else), only the jobs in that host end,
 * and the next job of that principal gets a fresh host.
 *
 * @module
 */
import type { AgentChannel, AgentLauncher, ChannelHandlers, LaunchSpec } from "./channel.ts";
import type { HostCommand, HostReport } from "./host/protocol.ts";
import { BOOTSTRAP_URL } from "./worker/entry.ts";
import { findDenoConfig } from "./deno_config.ts";
import { cacheModules } from "./module_cache.ts";
import { childEnv } from "./child_env.ts";
import { denyFlags } from "./deny_flags.ts";
import type { Protection } from "./protection.ts";

/** Options of {@linkcode HostLauncher}. */
export interface HostLauncherOptions {
  /** Heap cap of each host process, MiB (default 512). */
  heapMb?: number;
  /** Paths no agent may read or write, whatever its lease (the runtime's state). */
  denyPaths?: string[];
  /** The runtime's protected paths and listeners, denied to the whole process. */
  protection?: Protection;
  /** How long a host with no jobs lives on (ms, default 60 s). */
  idleMs?: number;
  /** The deno executable (default: the one running the runtime). */
  denoPath?: string;
  /**
   * Whether agents may import npm packages (default false). When true, only
   * packages already in Deno's cache load: hosts never download.
   */
  allowNpm?: boolean;
  /**
   * The `deno.json` hosts resolve modules with (its import map and
   * lockfile). {@linkcode HostLauncher.create} finds the one the runtime
   * process runs with.
   */
  configPath?: string;
}

const HOST_MAIN = new URL("./host/main.ts", import.meta.url).href;

class Host {
  readonly process: Deno.ChildProcess;
  readonly channels = new Map<string, ChannelHandlers>();
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #writing: Promise<void> = Promise.resolve();
  #encoder = new TextEncoder();
  dead = false;
  /** A job here was force-killed and its thread may still spin: no new jobs, and killed once empty. */
  tainted = false;
  idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(args: string[], denoPath: string, onExit: (host: Host, reason: string) => void) {
    this.process = new Deno.Command(denoPath, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env: childEnv(),
    }).spawn();
    this.#writer = this.process.stdin.getWriter();
    this.#readReports();
    let stderrTail = "";
    this.process.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (s) => void (stderrTail = (stderrTail + s).slice(-2000)) }),
    ).catch(() => {});
    this.process.status.then((status) => {
      this.dead = true;
      const oom = /heap out of memory|Reached heap limit|allocation failed/i.test(stderrTail);
      const why = oom
        ? "an agent exhausted the sandbox host's memory"
        : `sandbox host process exited (code ${status.code}${
          status.signal ? `, ${status.signal}` : ""
        })`;
      onExit(this, why);
    });
  }

  send(cmd: HostCommand): void {
    if (this.dead) return;
    const bytes = this.#encoder.encode(JSON.stringify(cmd) + "\n");
    this.#writing = this.#writing.then(() => this.#writer.write(bytes)).catch(() => {});
  }

  async #readReports(): Promise<void> {
    let buf = "";
    try {
      for await (const chunk of this.process.stdout.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line) this.#dispatch(JSON.parse(line) as HostReport);
        }
      }
    } catch {
      // The process is gone; its status handler reports that.
    }
  }

  #dispatch(r: HostReport): void {
    if (!("id" in r)) return;
    const handlers = this.channels.get(r.id);
    if (!handlers) return;
    if ("crash" in r) {
      this.channels.delete(r.id);
      handlers.crash(r.crash);
    } else handlers.message(r.m);
  }

  kill(): void {
    try {
      this.process.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Launches workers in per-principal sandbox host processes. */
export class HostLauncher implements AgentLauncher {
  /** The host each principal's next job goes to. */
  #hosts = new Map<string, Host>();
  /** Every live host, including retired (tainted) ones still finishing jobs. */
  #all = new Set<Host>();
  #args: string[];
  #denoPath: string;
  #idleMs: number;
  #closed = false;

  /**
   * A launcher whose hosts resolve modules as this process does and find
   * their own code in the cache: it discovers this process's `deno.json`
   * (unless `options.configPath` names one) and, when the package is remote,
   * caches the host's main module and the worker bootstrap before any host
   * starts, so hosts keep running with `--cached-only`.
   *
   * @param options heap cap, denied paths, idle lifetime, configuration
   * @returns the launcher
   * @example
   * ```ts ignore
   * import { HostLauncher } from "./host_launcher.ts";
   * const launcher = await HostLauncher.create({ denyPaths: ["/srv/arcp/data"] });
   * ```
   */
  static async create(options: HostLauncherOptions = {}): Promise<HostLauncher> {
    const configPath = options.configPath ?? await findDenoConfig(Deno.mainModule);
    await cacheModules([HOST_MAIN, BOOTSTRAP_URL], {
      denoPath: options.denoPath ?? Deno.execPath(),
      configPath,
    });
    return new HostLauncher({ ...options, configPath });
  }

  /**
   * A launcher that starts hosts as they are; {@linkcode HostLauncher.create}
   * also readies their configuration and modules.
   *
   * @param options heap cap, denied paths, idle lifetime, configuration
   */
  constructor(options: HostLauncherOptions = {}) {
    this.#denoPath = options.denoPath ?? Deno.execPath();
    this.#idleMs = options.idleMs ?? 60_000;
    this.#args = [
      "run",
      "--no-prompt",
      "--unstable-worker-options",
      // Hosts never download code: whatever an agent imports must already be cached.
      "--cached-only",
      ...(options.configPath ? ["--config", options.configPath] : []),
      ...(options.allowNpm ? [] : ["--no-npm"]),
      `--v8-flags=--max-old-space-size=${options.heapMb ?? 512}`,
      "--allow-read",
      "--allow-write",
      "--allow-net",
      ...denyFlags(options.protection, options.denyPaths),
      HOST_MAIN,
    ];
  }

  /** Host processes alive now. */
  get hostCount(): number {
    return this.#all.size;
  }

  #hostFor(principal: string): Host {
    let host = this.#hosts.get(principal);
    if (host && !host.dead && !host.tainted) return host;
    host = new Host(this.#args, this.#denoPath, (h, reason) => {
      this.#all.delete(h);
      if (this.#hosts.get(principal) === h) this.#hosts.delete(principal);
      clearTimeout(h.idleTimer);
      for (const handlers of h.channels.values()) handlers.crash(reason);
      h.channels.clear();
    });
    this.#hosts.set(principal, host);
    this.#all.add(host);
    return host;
  }

  /**
   * Starts a worker in the principal's host process.
   *
   * @param spec what to start
   * @param handlers where its messages go
   * @returns the channel
   */
  launch(spec: LaunchSpec, handlers: ChannelHandlers): AgentChannel {
    if (this.#closed) throw new Error("sandbox is closed");
    const host = this.#hostFor(spec.principal);
    clearTimeout(host.idleTimer);
    host.channels.set(spec.jobId, handlers);
    host.send({
      c: "launch",
      id: spec.jobId,
      agentUrl: spec.agentUrl,
      permissions: spec.permissions,
    });
    let alive = true;
    return {
      post: (msg) => {
        if (alive) host.send({ c: "post", id: spec.jobId, msg });
      },
      kill: (forced) => {
        if (!alive) return;
        alive = false;
        host.channels.delete(spec.jobId);
        host.send({ c: "kill", id: spec.jobId });
        if (forced && !host.tainted) {
          // Worker.terminate() cannot stop synchronous code (Deno 2.9): retire
          // this process; the principal's next job gets a fresh one.
          host.tainted = true;
          if (this.#hosts.get(spec.principal) === host) this.#hosts.delete(spec.principal);
        }
        if (host.tainted && host.channels.size === 0) host.kill();
        else if (host.channels.size === 0) {
          host.idleTimer = setTimeout(() => {
            if (host.channels.size === 0) host.kill();
          }, this.#idleMs);
        }
      },
    };
  }

  /** Kills every host process and waits for them to exit. */
  async close(): Promise<void> {
    this.#closed = true;
    const hosts = [...this.#all];
    this.#hosts.clear();
    this.#all.clear();
    for (const h of hosts) {
      clearTimeout(h.idleTimer);
      h.kill();
    }
    await Promise.all(hosts.map((h) => h.process.status.catch(() => {})));
  }
}
