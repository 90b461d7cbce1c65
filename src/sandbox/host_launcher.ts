/**
 * Runs each job's agent worker in a sandbox process of its own, with a V8
 * heap cap and Deno permissions that deny the runtime's own state, and
 * SIGKILLs that process when the job ends for any reason: threads, timers
 * and memory the agent created cannot outlive its job, and nothing of one
 * job is visible to another. A small pool of idle, already connected
 * processes keeps process start off the path from submit to first event;
 * a process never serves a second job.
 *
 * @module
 */
import { type Logger, silentLogger } from "../logger.ts";
import type { AgentChannel, AgentLauncher, ChannelHandlers, LaunchSpec } from "./channel.ts";
import { makeControlDir } from "./control_socket.ts";
import { BOOTSTRAP_URL } from "./worker/entry.ts";
import { findDenoConfig } from "./deno_config.ts";
import { cacheModules } from "./module_cache.ts";
import { SandboxProcess, type SpawnSpec } from "./sandbox_process.ts";
import { defaultMemoryMb } from "./memory_ceiling.ts";
import { childEnv } from "./child_env.ts";
import { childRunFlags } from "./child_run.ts";
import { findDenoDir } from "./protected_paths.ts";
import { denyFlags } from "./deny_flags.ts";
import type { Protection } from "./protection.ts";

/** Options of {@linkcode HostLauncher}. */
export interface HostLauncherOptions {
  /** Heap cap of each sandbox process, MiB (default 512). */
  heapMb?: number;
  /**
   * Memory ceiling of each sandbox process (its resident set, which counts
   * ArrayBuffers and wasm memory), MiB. Default: {@linkcode defaultMemoryMb}
   * (an eighth of the machine's memory, clamped to 256 MiB – 4 GiB).
   */
  memoryMb?: number;
  /** Paths no agent may read or write, whatever its lease (the runtime's state). */
  denyPaths?: string[];
  /** The runtime's protected paths and listeners, denied to the whole process. */
  protection?: Protection;
  /** Idle, connected processes kept ready for the next jobs (default 2; 0 starts each on demand). */
  warmPool?: number;
  /** The deno executable (default: the one running the runtime). */
  denoPath?: string;
  /**
   * Whether agents may import npm packages (default false). When true, only
   * packages already in Deno's cache load: processes never download.
   */
  allowNpm?: boolean;
  /**
   * The `deno.json` processes resolve modules with (its import map and
   * lockfile). {@linkcode HostLauncher.create} finds the one the runtime
   * process runs with.
   */
  configPath?: string;
  /** Where sandbox output and faults are logged (default: nowhere). */
  logger?: Logger;
}

const HOST_MAIN = new URL("./host/main.ts", import.meta.url).href;

/** Defaults of the {@linkcode HostLauncherOptions} that have one. */
export const DEFAULT_HOST_OPTIONS: { heapMb: number; warmPool: number } = {
  heapMb: 512,
  warmPool: 2,
};

/** How long a process has to connect to its control socket (ms). */
const CONNECT_TIMEOUT_MS = 30_000;

/** Pool processes that may fail to start in a row before the pool stops refilling. */
const MAX_POOL_FAILURES = 3;

/** Launches each job's worker in a sandbox process of its own. */
export class HostLauncher implements AgentLauncher {
  #spawn: SpawnSpec;
  #poolSize: number;
  /** Idle processes, oldest first. */
  #idle: SandboxProcess[] = [];
  /** Every process alive, idle or serving a job. */
  #all = new Set<SandboxProcess>();
  #poolFailures = 0;
  #closed = false;

  /**
   * A launcher whose processes resolve modules as this process does and
   * find their own code in the cache: it discovers this process's
   * `deno.json` (unless `options.configPath` names one), caches the host's
   * main module and the worker bootstrap when the package is remote (so
   * processes keep running with `--cached-only`), creates the private
   * control directory and fills the warm pool.
   *
   * @param options heap cap, denied paths, pool size, configuration
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
    return new HostLauncher(await makeControlDir(), { ...options, configPath });
  }

  /**
   * A launcher that starts processes as they are; {@linkcode HostLauncher.create}
   * also readies their configuration, modules and control directory.
   *
   * @param controlDir a private (0700) directory for control sockets, which
   *   the caller denies to every worker; the launcher removes it on close
   * @param options heap cap, denied paths, pool size, configuration
   */
  constructor(controlDir: string, options: HostLauncherOptions = {}) {
    const heapMb = options.heapMb ?? DEFAULT_HOST_OPTIONS.heapMb;
    this.#poolSize = options.warmPool ?? DEFAULT_HOST_OPTIONS.warmPool;
    this.#spawn = {
      denoPath: options.denoPath ?? Deno.execPath(),
      env: childEnv(),
      controlDir,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      heapMb,
      memoryMb: options.memoryMb ?? defaultMemoryMb(heapMb),
      log: options.logger ?? silentLogger(),
      denoDir: findDenoDir(),
      args: [
        ...childRunFlags({ configPath: options.configPath, heapMb }),
        ...(options.allowNpm ? [] : ["--no-npm"]),
        "--allow-read",
        "--allow-write",
        "--allow-net",
        ...denyFlags(options.protection, options.denyPaths),
        HOST_MAIN,
      ],
    };
    this.#refill();
  }

  /** The memory ceiling of each sandbox process, MiB. */
  get memoryMb(): number {
    return this.#spawn.memoryMb;
  }

  /** The directory holding control sockets: no worker may reach it. */
  get controlDir(): string {
    return this.#spawn.controlDir;
  }

  /** Sandbox processes alive now (idle ones included). */
  get hostCount(): number {
    return this.#all.size;
  }

  /** Process ids of the processes serving jobs now. */
  get busyPids(): number[] {
    return [...this.#all].filter((p) => p.jobId !== undefined).map((p) => p.pid);
  }

  #start(): SandboxProcess {
    const proc = new SandboxProcess(this.#spawn, (p) => {
      this.#all.delete(p);
      const i = this.#idle.indexOf(p);
      if (i >= 0) {
        this.#idle.splice(i, 1);
        // An idle process that died never served a job: refill, but not forever.
        if (++this.#poolFailures < MAX_POOL_FAILURES) this.#refill();
      }
    });
    this.#all.add(proc);
    return proc;
  }

  /** Tops the pool up in the background. */
  #refill(): void {
    while (!this.#closed && this.#idle.length < this.#poolSize) {
      const proc = this.#start();
      this.#idle.push(proc);
      proc.ready.then(() => void (this.#poolFailures = 0), () => {});
    }
  }

  /**
   * Starts a worker for one job in a process of its own: an idle one from
   * the pool when there is one, else a fresh one.
   *
   * @param spec what to start
   * @param handlers where its messages go
   * @returns the channel; killing it kills the process
   */
  launch(spec: LaunchSpec, handlers: ChannelHandlers): AgentChannel {
    if (this.#closed) throw new Error("sandbox is closed");
    const proc = this.#idle.shift() ?? this.#start();
    this.#poolFailures = 0;
    queueMicrotask(() => this.#refill());
    proc.attach(spec.jobId, handlers);
    proc.send({
      c: "launch",
      id: spec.jobId,
      agentUrl: spec.agentUrl,
      permissions: spec.permissions,
      egress: spec.egress,
    });
    return {
      post: (msg) => proc.send({ c: "post", msg }),
      kill: () => proc.release(),
    };
  }

  /** Kills every process, waits for them to exit and removes the control directory. */
  async close(): Promise<void> {
    this.#closed = true;
    const procs = [...this.#all];
    this.#idle = [];
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => p.process.status.catch(() => {})));
    await Deno.remove(this.#spawn.controlDir, { recursive: true }).catch(() => {});
  }
}
