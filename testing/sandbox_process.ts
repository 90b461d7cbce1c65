/**
 * A sandbox process spawned the way the process launcher spawns one (same
 * flags, environment and `--cached-only`), alone, for tests and benches
 * that drive its control channel directly.
 *
 * @module
 */
import { DEFAULT_HOST_OPTIONS } from "../src/sandbox/host_launcher.ts";
import { SandboxProcess, type SpawnSpec } from "../src/sandbox/sandbox_process.ts";
import { childEnv } from "../src/sandbox/child_env.ts";
import { childRunFlags } from "../src/sandbox/child_run.ts";
import { denyFlags } from "../src/sandbox/deny_flags.ts";
import { makeControlDir } from "../src/sandbox/control_socket.ts";
import { cacheModules } from "../src/sandbox/module_cache.ts";
import { defaultMemoryMb } from "../src/sandbox/memory_ceiling.ts";
import { findDenoDir } from "../src/sandbox/protected_paths.ts";
import { permissionsForLease } from "../src/sandbox/permissions.ts";
import { ThreadCounter } from "../src/sandbox/thread_count.ts";
import { Spawner } from "../src/sandbox/spawner.ts";
import { BOOTSTRAP_URL } from "../src/sandbox/worker/entry.ts";
import { BEAT_INTERVAL_MS } from "../src/sandbox/worker/limits.ts";
import { silentLogger } from "../src/logger.ts";

/** Spawns lone sandbox processes of one checkout; closing it kills them. */
export class LoneProcesses implements AsyncDisposable {
  readonly spec: SpawnSpec;
  #procs: SandboxProcess[] = [];

  private constructor(spec: SpawnSpec) {
    this.spec = spec;
  }

  /**
   * Readies the spec: the checkout's host main module, its bootstrap and the
   * agents to load cached, a private control directory.
   *
   * @param root the checkout whose `src/sandbox/host/main.ts` runs
   * @param agentUrls the agent modules its processes will load
   * @returns the spawner
   */
  static async create(root: string, agentUrls: string[]): Promise<LoneProcesses> {
    const hostMain = new URL("src/sandbox/host/main.ts", `file://${Deno.realPathSync(root)}/`).href;
    const configPath = `${root}/deno.json`;
    const heapMb = DEFAULT_HOST_OPTIONS.heapMb;
    await cacheModules([hostMain, BOOTSTRAP_URL, ...agentUrls], {
      denoPath: Deno.execPath(),
      configPath,
    });
    return new LoneProcesses({
      denoPath: Deno.execPath(),
      env: childEnv(),
      controlDir: await makeControlDir(),
      connectTimeoutMs: 30_000,
      heapMb,
      memoryMb: defaultMemoryMb(heapMb),
      log: silentLogger(),
      denoDir: findDenoDir(),
      threads: new ThreadCounter(),
      beatMs: BEAT_INTERVAL_MS,
      spawner: new Spawner(),
      args: [
        ...childRunFlags({ configPath, heapMb }),
        "--no-npm",
        "--allow-read",
        "--allow-write",
        "--allow-net",
        ...denyFlags(undefined, []),
        hostMain,
      ],
    });
  }

  /**
   * Spawns a process whose worker has loaded `agentUrl` under an empty
   * lease, and waits until that worker is ready.
   *
   * @param agentUrl the agent module
   * @returns the process
   */
  async start(agentUrl: string): Promise<SandboxProcess> {
    const proc = new SandboxProcess(this.spec, () => {});
    this.#procs.push(proc);
    await proc.ready;
    proc.launch({ agentUrl, permissions: permissionsForLease({}), egress: [] });
    await until(() => proc.workerReady || proc.dead, 60_000, "the worker");
    if (proc.dead) throw new Error(`the sandbox process for ${agentUrl} died while loading`);
    return proc;
  }

  /** Kills the processes it started and removes the control directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const p of this.#procs) p.kill();
    await Promise.all(this.#procs.map((p) => p.process.status));
    await this.spec.spawner.close();
    await this.spec.threads.close();
    await Deno.remove(this.spec.controlDir, { recursive: true }).catch(() => {});
  }
}

/**
 * Waits until `test` holds, polling every 50 ms.
 *
 * @param test the condition
 * @param ms how long to wait at most
 * @param what what is awaited, for the error
 */
export async function until(test: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
