/**
 * Runs agent workers in sandbox processes: one worker per process, with a V8
 * heap cap and Deno permissions that deny the runtime's own state, and
 * SIGKILLs a process when its last job ends, so threads, timers and memory
 * an agent created cannot outlive its job.
 *
 * By default each job gets a fresh process and worker, and nothing of one
 * job is visible to another. Start-up stays off the path from submit to
 * first event: the pool keeps processes whose worker already runs the agent
 * with the exact permissions recent jobs needed (keyed by
 * {@linkcode workerKey}), sized by recent demand within `warmMax`, plus
 * idle processes without a worker for keys it has not seen. An agent that
 * asks for `reuse` or `concurrency` shares its workers between jobs of the
 * identical key (principal included), within its limits.
 *
 * @module
 */
import { type Logger, silentLogger } from "../logger.ts";
import type {
  AgentChannel,
  AgentLauncher,
  AheadTemplate,
  ChannelHandlers,
  JobExit,
  LaunchSpec,
} from "./channel.ts";
import { makeControlDir } from "./control_socket.ts";
import type { HostMessage, JobMessage } from "./worker/wire.ts";
import { BOOTSTRAP_URL } from "./worker/entry.ts";
import { BEAT_INTERVAL_MS } from "./worker/limits.ts";
import { findDenoConfig } from "./deno_config.ts";
import { cacheModules } from "./module_cache.ts";
import { SandboxProcess, type SpawnSpec } from "./sandbox_process.ts";
import { Spawner } from "./spawner.ts";
import {
  defaultMemoryMb,
  defaultSpareBudget,
  defaultWarmMax,
  SPARE_WORKER_MB,
} from "./memory_ceiling.ts";
import { childEnv } from "./child_env.ts";
import { childRunFlags } from "./child_run.ts";
import { findDenoDir } from "./protected_paths.ts";
import { denyFlags } from "./deny_flags.ts";
import type { Protection } from "./protection.ts";
import type { Sharing } from "./sandbox.ts";
import { ThreadCounter } from "./thread_count.ts";
import { principalOf, WarmDemand, workerKey, type WorkerTemplate } from "./warm_demand.ts";
import { sliceSpent } from "../turn_slice.ts";

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
  /**
   * Idle, connected processes kept ready for the next jobs (default 2; 0
   * starts each on demand). While jobs arrive, the pool holds processes
   * whose worker already runs the agent the jobs need instead, as many as
   * the recent rate calls for, up to `warmMax`.
   */
  warmPool?: number;
  /**
   * Most warm processes held ready at once: each holds ~50 MiB, so this is
   * the pool's memory budget. Default: {@linkcode defaultWarmMax} (as many
   * as a sixteenth of the machine's memory holds, 8 – 32).
   */
  warmMax?: number;
  /**
   * Jobs one sandbox process serves, one after another, each in a fresh
   * worker (default 100; 1 gives every job a process of its own). A process
   * only takes the next job of the identical key, and only after its last
   * job ended with a result and left nothing running; any other outcome
   * kills it.
   */
  jobsPerProcess?: number;
  /**
   * How long a job may wait for a worker when the sandbox is at capacity
   * (processes starting at the limit, or its shared workers full) before it
   * ends with a retryable `INTERNAL_ERROR` (`cap: "sandbox_busy"`), ms
   * (default 10,000).
   */
  maxWaitMs?: number;
  /**
   * The longest a fresh job may be expected to wait for a worker when it is
   * submitted, ms (default 250). Past it, {@linkcode HostLauncher.refusal}
   * refuses the submit with a retryable `INTERNAL_ERROR`
   * (`cap: "sandbox_busy"`) before it is accepted: a queue longer than the
   * machine clears in that time only turns overload into latency. Once the
   * queue has not emptied for a quarter of it (overload, not a burst), the
   * limit is a tenth of it.
   */
  maxQueueMs?: number;
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
  /**
   * How often workers beat (ms; default 1000): the supervisor's interval.
   * A worker beats from its warm-up on, so a job given a ready worker posts
   * no beat of its own.
   */
  beatMs?: number;
}

const HOST_MAIN = new URL("./host/main.ts", import.meta.url).href;

/** Defaults of the {@linkcode HostLauncherOptions} that have one. */
export const DEFAULT_HOST_OPTIONS: {
  heapMb: number;
  warmPool: number;
  jobsPerProcess: number;
  maxWaitMs: number;
  maxQueueMs: number;
} = {
  heapMb: 512,
  warmPool: 2,
  jobsPerProcess: 100,
  maxWaitMs: 10_000,
  maxQueueMs: 250,
};

/** How long a process has to connect to its control socket (ms). */
const CONNECT_TIMEOUT_MS = 30_000;

/** Pool processes that may fail to start in a row before the pool stops refilling. */
const MAX_POOL_FAILURES = 3;

/** How often the pool drops warm workers nobody asks for any more (ms). */
const TRIM_MS = 5_000;

/**
 * Workers one key of a sharing agent may have at once; past it, jobs wait
 * for room (a process each is what sharing exists to avoid).
 */
const MAX_SHARED_WORKERS = Math.max(2, navigator.hardwareConcurrency ?? 2);

/** Turns a shared worker's start may wait for a turn with budget left before it goes anyway. */
const START_WAIT_TURNS = 3;

/**
 * How long a shared worker may take to start before its key's waiting jobs
 * may start another (ms). Until then they wait for it: it is ready sooner
 * than a process started after it, and a second start beside it only slows
 * both (2,000 sessions over 10 principals: 20 processes starting at once on
 * 2 cores, the first ready after 1.6 s, measured).
 */
const SLOW_START_MS = 1_000;

/**
 * Processes that may be starting at once (spawned, worker not yet ready):
 * starting costs CPU, and past the cores more starts only slow each other.
 */
const MAX_STARTING = Math.max(2, navigator.hardwareConcurrency ?? 2);

/**
 * Fresh jobs that may wait for a process (a burst of submits is normal; a
 * process starts in ~50–100 ms); one more is refused at once
 * (`sandbox_busy`): a longer queue only turns overload into latency.
 */
const MAX_FRESH_WAITING = Math.max(64, 16 * MAX_STARTING);

/**
 * Fresh jobs that may wait, whatever the expected wait, while the oldest of
 * them has waited no longer than the budget: a burst (a client starting a
 * dozen jobs at once on a busy machine) is not overload. At 2 × the start
 * limit, twelve jobs submitted together on two loaded cores were partly
 * refused. Once the oldest has waited past the budget the queue is
 * overload, not a burst: a floor that held then kept a sustained overload
 * at the floor, and every accepted job waited longer than the budget.
 */
const MIN_QUEUE_REFUSED = 8 * MAX_STARTING;

/**
 * A fresh queue that has not emptied for this part of `maxQueueMs` (a
 * quarter: 62.5 ms by default) is overload, not a burst: a burst drains, a
 * queue that stays is the machine falling behind. Holding such a queue to
 * the whole budget made every accepted job wait that long (100 sessions ×
 * 1 fresh echo/s on 2 cores: p50 0.96 s, p99 1.39 s, measured).
 */
const STANDING_PART = 4;

/**
 * The part of `maxQueueMs` a fresh job may be expected to wait while the
 * queue is overload (a tenth: 25 ms by default). Refusing more early does
 * not cost throughput (processes start in parallel with the queue either
 * way): at a quarter, the same load held p50 ~200 ms; at a tenth ~120 ms,
 * with as many jobs done per second (measured, 2 loaded cores).
 */
const OVERLOAD_PART = 10;

/**
 * Longest a refill of the pool waits for the fresh jobs in flight to be
 * delivered (ms): past it, it runs beside them (jobs that keep arriving, or
 * run long, must not starve the pool).
 */
const REFILL_DEFER_MS = 100;

/**
 * How long a principal that opened a session counts for idle processes
 * while it has no shared worker of its own (ms): a client that connects
 * submits within seconds, or is idle and its process is trimmed.
 */
const EXPECT_MS = 60_000;

/** Jobs that may wait for room in one key's shared workers. */
const MAX_SHARED_WAITING = 256;

/**
 * How long a key's most fresh jobs at once counts for its spares (ms): the
 * recent demand they are sized by.
 */
const SPARE_DEMAND_MS = 30_000;

/**
 * How long no fresh job may have come before spares start (ms): idle time,
 * not the gap between two jobs of a steady rate, where a worker start beside
 * the next job only slows it.
 */
const SPARE_IDLE_MS = 250;

/**
 * Most spares one process holds: its spares share its memory ceiling with
 * its job, so they take at most a quarter of it, and never more than this.
 */
const MAX_SPARES_PER_PROCESS = 8;

/**
 * How soon a key's spares are sized again while its first spare is being
 * measured (ms): a little over the time its process takes to sample it.
 */
const SPARE_MEASURE_MS = 450;

/** Most spares all processes hold together, whatever the memory budget allows. */
const MAX_SPARES = 256;

const BUSY = "the sandbox is at capacity, retry later";

/**
 * A job's channel before it has a worker: messages wait, in order, until it
 * is bound to one.
 */
class WaitingChannel implements AgentChannel {
  readonly handlers: ChannelHandlers;
  #queued: JobMessage[] = [];
  /** Called once when the job ends, however it ends. */
  #release: (() => void) | undefined;
  #post: ((msg: JobMessage) => void) | undefined;
  #end: ((how: JobExit, delivered?: Promise<unknown>) => void) | undefined;
  #ended = false;

  constructor(handlers: ChannelHandlers, release?: () => void) {
    this.handlers = handlers;
    this.#release = release;
  }

  #released(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  /** Whether it still waits for a worker. */
  get waiting(): boolean {
    return this.#post === undefined && !this.#ended;
  }

  /** Whether its job ended (while waiting, or after). */
  get ended(): boolean {
    return this.#ended;
  }

  bind(
    post: (msg: JobMessage) => void,
    end: (how: JobExit, delivered?: Promise<unknown>) => void,
  ): void {
    this.#post = post;
    this.#end = end;
    for (const msg of this.#queued.splice(0)) post(msg);
  }

  /** Ends a job that never got a worker, with the reason and cap its error names. */
  refuse(reason: string, cap: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#released();
    this.handlers.crash(reason, cap);
  }

  post(msg: JobMessage): void {
    if (this.#post) this.#post(msg);
    else if (!this.#ended) this.#queued.push(msg);
  }

  end(how: JobExit, delivered?: Promise<unknown>): void {
    this.#released();
    if (this.#end) return this.#end(how, delivered);
    this.#ended = true;
    this.#queued = [];
  }
}

/** Takes the newest process of a list whose worker is ready, if any. */
function takeReady(list: SandboxProcess[] | undefined): SandboxProcess | undefined {
  if (!list) return undefined;
  for (let i = list.length - 1; i >= 0; i--) {
    if (list[i].workerReady) return list.splice(i, 1)[0];
  }
  return undefined;
}

/** What the sandbox processes are doing, for the operator metrics. */
export interface SandboxStats {
  /**
   * Every process alive, by a small index (the lowest free when it started,
   * kept for its life, so a label never names a pid), with its resident set
   * as last reported.
   */
  hosts: Array<{ index: number; rssBytes?: number }>;
  /**
   * Idle processes without a worker (`idle`), with their agent's worker
   * started ahead and ready (`warm`), kept after a job for their
   * principal's next one with its next worker ready (`recycled`), either of
   * those whose worker still loads (`readying`: a job given one waits for
   * it), and workers shared by jobs of one key (`shared`).
   */
  pools: { idle: number; warm: number; recycled: number; readying: number; shared: number };
  /** Jobs waiting for a worker while the sandbox is at capacity. */
  waiting: number;
  /** Spare workers held ready by idle processes for their key's next fresh jobs. */
  spares: number;
}

/** A worker shared by jobs of one key. */
interface SharedWorker {
  proc: SandboxProcess;
  sharing: Sharing;
  /** When it was given its process (ms since the epoch): how long its start has taken. */
  since: number;
  /** Jobs it has taken in all. */
  served: number;
  /** Set once it takes no more jobs; it goes when its last job does. */
  retiring: boolean;
  /** Kills it once it has had no job for `idleSec`; armed once, not per job. */
  idle?: ReturnType<typeof setTimeout>;
  /** When its last job ended, while it has none. */
  idleSince?: number;
  /**
   * Set on a worker readied ahead of its principal's first job of its agent
   * (see {@linkcode HostLauncher.expect}): the principal and agent it
   * expects. Until it serves a job, a job of that principal and agent with
   * another key discards it.
   */
  ahead?: { principal: string; agentUrl: string };
}

/**
 * Arms a shared worker's idle timer unless it is armed: at each firing, a
 * worker idle for its whole `idleSec` is killed, one idle for less waits
 * the rest, and one serving a job stops timing until its jobs end again.
 * One timer per idle spell, instead of one per job of a busy worker.
 */
function armIdle(worker: SharedWorker, ms: number): void {
  if (worker.idle !== undefined) return;
  worker.idle = setTimeout(() => {
    worker.idle = undefined;
    if (worker.idleSince === undefined) return;
    const left = worker.idleSince + worker.sharing.idleSec * 1000 - Date.now();
    if (left <= 0) worker.proc.kill();
    else armIdle(worker, left);
  }, ms);
  Deno.unrefTimer(worker.idle);
}

/** Launches agent workers in sandbox processes, one worker per process. */
export class HostLauncher implements AgentLauncher {
  #spawn: SpawnSpec;
  #poolSize: number;
  #warmMax: number;
  #jobsPerProcess: number;
  #maxWaitMs: number;
  #maxQueueMs: number;
  /**
   * Fresh jobs waiting for a process, oldest first, each with the number of
   * jobs that waited ahead of it when it came.
   */
  #freshWaiting: Array<
    { spec: LaunchSpec; channel: WaitingChannel; since: number; ahead: number }
  > = [];
  /**
   * How long each job ahead in the fresh queue has recently held up the one
   * behind it until its worker was ready (ms, smoothed): the queue's drain
   * time per place.
   */
  #perPlaceMs = 50;
  /** Since when the fresh queue has held a job without emptying (ms), if it holds one. */
  #backlogSince: number | undefined;
  /** Jobs bound to a process whose worker is not yet ready: what to learn once it is. */
  #readyWaits = new Map<SandboxProcess, () => void>();
  /** Idle processes without a worker, oldest first. */
  #idle: SandboxProcess[] = [];
  /** Idle processes whose worker was started ahead, by worker key, oldest first. */
  #warm = new Map<string, SandboxProcess[]>();
  /**
   * Idle processes that served a job and run a fresh worker for the next one,
   * by the principal's worker key, oldest first; `base` is the key without
   * the principal, under which demand is counted.
   */
  #recycled = new Map<string, { base: string; procs: SandboxProcess[] }>();
  /**
   * Processes serving a fresh job (or readying a fresh worker after one)
   * that may serve another, by the key without the principal: they come
   * back to the pool, so the pool counts them instead of starting others.
   */
  #returning = new Map<string, number>();
  /** Workers shared between jobs, by worker key. */
  #shared = new Map<string, SharedWorker[]>();
  /** Jobs waiting for room in a shared worker, by worker key, oldest first. */
  #sharedWaiting = new Map<
    string,
    Array<{ spec: LaunchSpec; sharing: Sharing; channel: WaitingChannel; since: number }>
  >();
  #waitTimer: ReturnType<typeof setInterval> | undefined;
  /**
   * Worker keys whose waiting jobs need a new process, deferred to a later
   * turn because this one's budget was spent, in the order they asked.
   */
  #startsDue = new Set<string>();
  #startsTimer: ReturnType<typeof setTimeout> | undefined;
  /** Turns the deferred keys have waited since a process was last started for one. */
  #startsWaited = 0;
  /** Every process alive, idle or serving, with its metrics index. */
  #all = new Map<SandboxProcess, number>();
  #demand = new WarmDemand();
  /** Fresh jobs of each principal's key now, from launch to end (waiting ones included). */
  #freshLive = new Map<string, number>();
  /** The most of them at once lately, by key, and when that was last reached. */
  #freshPeak = new Map<string, { n: number; at: number }>();
  /**
   * What a spare of each key cost when its processes last measured one
   * (bytes), kept while the key's peak counts: a burst takes every idle
   * process of its key, and its next spares need not be measured again.
   */
  #spareCost = new Map<string, number>();
  /** The memory all processes' spares may take together (bytes). */
  #spareBudget: number;
  /** When the last fresh job came (ms since the epoch). */
  #lastFresh = 0;
  /** Retries {@linkcode #wantSpares} once the launcher has been idle long enough. */
  #spareTimer: ReturnType<typeof setTimeout> | undefined;
  #poolFailures = 0;
  #refillQueued = false;
  /** Fresh jobs bound to a process whose outcome is not yet delivered. */
  #inFlight = 0;
  /** Set while a refill waits for {@linkcode #inFlight} to drop to 0; forces it when it fires. */
  #refillDeferred: ReturnType<typeof setTimeout> | undefined;
  #trim: ReturnType<typeof setInterval>;
  #closed = false;
  /**
   * Principals that opened a session lately: when they last did (ms), and
   * the agents whose worker was readied ahead for them (once per agent).
   */
  #expected = new Map<string, { at: number; readied: Set<string> }>();
  /** What a job of each sharing agent runs with under an empty lease, as last heard. */
  #aheadTemplates: readonly AheadTemplate[] = [];
  /**
   * The last key's template of each sharing agent, by module URL, and when
   * it was launched (ms): what the next principal's job of it most likely
   * runs with.
   */
  #lastShared = new Map<string, { template: AheadTemplate; at: number }>();

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
    this.#warmMax = Math.max(this.#poolSize, options.warmMax ?? defaultWarmMax());
    this.#jobsPerProcess = options.jobsPerProcess ?? DEFAULT_HOST_OPTIONS.jobsPerProcess;
    this.#maxWaitMs = options.maxWaitMs ?? DEFAULT_HOST_OPTIONS.maxWaitMs;
    this.#maxQueueMs = options.maxQueueMs ?? DEFAULT_HOST_OPTIONS.maxQueueMs;
    this.#spawn = {
      denoPath: options.denoPath ?? Deno.execPath(),
      env: childEnv(),
      controlDir,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      heapMb,
      memoryMb: options.memoryMb ?? defaultMemoryMb(heapMb),
      log: options.logger ?? silentLogger(),
      denoDir: findDenoDir(),
      threads: new ThreadCounter(),
      beatMs: options.beatMs ?? BEAT_INTERVAL_MS,
      spawner: new Spawner(),
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
    this.#spareBudget = defaultSpareBudget();
    this.#trim = setInterval(() => {
      this.#refill(true);
      this.#wantSpares();
    }, TRIM_MS);
    Deno.unrefTimer(this.#trim);
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
    return this.#started().filter((p) => p.active > 0).map((p) => p.pid!);
  }

  /** The processes alive whose start has completed (their pid is known). */
  #started(): SandboxProcess[] {
    return [...this.#all.keys()].filter((p) => p.pid !== undefined);
  }

  /**
   * What the processes are doing now.
   *
   * @returns the processes with their memory, the pools' sizes and the jobs waiting
   */
  stats(): SandboxStats {
    let warm = 0;
    let recycled = 0;
    let readying = 0;
    for (const list of this.#warm.values()) {
      for (const p of list) p.workerReady ? warm++ : readying++;
    }
    for (const r of this.#recycled.values()) {
      for (const p of r.procs) p.workerReady ? recycled++ : readying++;
    }
    let shared = 0;
    for (const list of this.#shared.values()) shared += list.length;
    let waiting = this.#freshWaiting.length;
    for (const list of this.#sharedWaiting.values()) waiting += list.length;
    let spares = 0;
    for (const p of this.#all.keys()) spares += p.spares;
    return {
      hosts: [...this.#all].map(([proc, index]) => ({ index, rssBytes: proc.rssBytes })),
      pools: { idle: this.#idle.length, warm, recycled, readying, shared },
      waiting,
      spares,
    };
  }

  /**
   * Every sandbox process alive (once started), for operators: its pid, the resident set
   * it last reported and the jobs it serves now.
   *
   * @returns them
   */
  hosts(): Array<{ pid: number; rss_bytes?: number; jobs: number }> {
    return this.#started().map((p) => ({
      pid: p.pid!,
      ...(p.rssBytes === undefined ? {} : { rss_bytes: p.rssBytes }),
      jobs: p.active,
    }));
  }

  /** Processes waiting for a job now: without a worker, and with one started ahead. */
  get warmCount(): { idle: number; warm: number } {
    let warm = 0;
    for (const list of this.#warm.values()) warm += list.length;
    for (const r of this.#recycled.values()) warm += r.procs.length;
    return { idle: this.#idle.length, warm };
  }

  #start(): SandboxProcess {
    const proc = new SandboxProcess(this.#spawn, (p) => {
      this.#all.delete(p);
      this.#readyWaits.delete(p);
      this.#forget(p);
      queueMicrotask(() => {
        this.#serveFresh();
        this.#kickStarts();
      });
    });
    // A process that stops starting frees room for another start.
    proc.onSettled = () => {
      const learn = proc.workerReady ? this.#readyWaits.get(proc) : undefined;
      if (learn) {
        this.#readyWaits.delete(proc);
        learn();
      }
      if (proc.workerReady) this.#sharedReady(proc);
      this.#serveFresh();
      this.#kickStarts();
      this.#queueRefill();
      this.#wantSpares();
    };
    const used = new Set(this.#all.values());
    let index = 0;
    while (used.has(index)) index++;
    this.#all.set(proc, index);
    return proc;
  }

  /** Drops a process that exited from whichever list held it; refills for an idle one. */
  #forget(p: SandboxProcess): void {
    const i = this.#idle.indexOf(p);
    if (i >= 0) {
      this.#idle.splice(i, 1);
      // An idle process that died never served a job: refill, but not forever.
      if (++this.#poolFailures < MAX_POOL_FAILURES) this.#queueRefill();
      return;
    }
    for (const [key, list] of this.#warm) {
      const w = list.indexOf(p);
      if (w < 0) continue;
      list.splice(w, 1);
      if (list.length === 0) this.#warm.delete(key);
      this.#demand.warmFailed(key);
      this.#queueRefill();
      return;
    }
    for (const [key, r] of this.#recycled) {
      const w = r.procs.indexOf(p);
      if (w < 0) continue;
      r.procs.splice(w, 1);
      if (r.procs.length === 0) this.#recycled.delete(key);
      return;
    }
    for (const [key, list] of this.#shared) {
      const s = list.findIndex((x) => x.proc === p);
      if (s < 0) continue;
      clearTimeout(list[s].idle);
      list.splice(s, 1);
      if (list.length === 0) this.#shared.delete(key);
      queueMicrotask(() => this.#serveShared(key));
      return;
    }
  }

  /**
   * Refills the pool in a microtask, or, while fresh jobs are in flight,
   * once their outcomes are delivered (within {@linkcode REFILL_DEFER_MS}).
   * A refill may start processes: a spawn and a process's start (~100 ms of
   * CPU) beside a job's commits and relay slowed that job, and the refill a
   * launch queued ran before the job's `start` was even written. (Fresh
   * echo at 20 jobs/s, two runs each: 12 of 17 spawns began inside a bound
   * job's window before, 2 of 10 after, measured.)
   */
  #queueRefill(): void {
    if (this.#refillQueued || this.#refillDeferred !== undefined) return;
    if (this.#inFlight > 0) {
      this.#refillDeferred = setTimeout(() => this.#runDeferredRefill(), REFILL_DEFER_MS);
      Deno.unrefTimer(this.#refillDeferred);
      return;
    }
    this.#refillSoon();
  }

  #refillSoon(): void {
    this.#refillQueued = true;
    queueMicrotask(() => {
      this.#refillQueued = false;
      this.#refill();
    });
  }

  /** Runs the deferred refill: the jobs in flight landed, or it waited long enough. */
  #runDeferredRefill(): void {
    clearTimeout(this.#refillDeferred);
    this.#refillDeferred = undefined;
    if (!this.#refillQueued) this.#refillSoon();
  }

  /** A fresh job's outcome is out (or it ended without one): a deferred refill may run. */
  #landed(): void {
    if (this.#inFlight === 1) queueMicrotask(() => this.#wantSpares());
    if (--this.#inFlight > 0 || this.#refillDeferred === undefined) return;
    this.#runDeferredRefill();
  }

  /**
   * Brings the pool to what recent demand calls for: workers started ahead
   * for the keys in use, idle processes for the rest (at least `warmPool` in
   * all), and no more than `warmMax`. Warm workers of keys no longer in use
   * are stopped.
   *
   * The pool grows at once, but shrinks to what demand calls for only when
   * `trim` is set (every {@linkcode TRIM_MS}) or past `warmMax`: the wanted
   * count moves by one as launches enter and leave the demand window, and
   * shrinking at once started a process and killed it again before it was
   * ready, over and over (5 of every 100 jobs at a steady 20/s paid for a
   * process start, measured).
   *
   * @param trim whether to stop processes beyond what demand calls for
   */
  #refill(trim = false): void {
    if (this.#closed) return;
    const wanted = this.#poolSize === 0 ? [] : this.#demand.wanted(Date.now(), this.#warmMax);
    const want = new Map(wanted.map((w) => [w.key, w.n]));
    for (const [key, list] of this.#warm) {
      if (want.has(key)) continue;
      for (const p of list) p.kill();
      this.#warm.delete(key);
    }
    // Recycled processes count first: they cost nothing more to keep, while
    // their key is in use and the budget allows (the oldest go first).
    let budget = this.#warmMax;
    const recycledOf = new Map<string, number>();
    for (const [key, r] of [...this.#recycled].reverse()) {
      if (!want.has(r.base)) r.procs.splice(0).forEach((p) => p.kill());
      while (r.procs.length > Math.max(0, budget)) r.procs.shift()!.kill();
      budget -= r.procs.length;
      if (r.procs.length === 0) this.#recycled.delete(key);
      recycledOf.set(r.base, (recycledOf.get(r.base) ?? 0) + r.procs.length);
    }
    let warm = 0;
    for (const w of wanted) {
      const have = (recycledOf.get(w.key) ?? 0) + (this.#returning.get(w.key) ?? 0);
      const n = Math.max(0, Math.min(w.n - have, budget));
      const list = this.#warm.get(w.key) ?? [];
      const keep = trim ? n : Math.max(n, Math.min(list.length, budget));
      budget -= Math.max(n, keep);
      while (list.length > keep) list.shift()!.kill();
      while (list.length < n && this.#mayStart()) list.push(this.#startWarm(w.template));
      if (list.length > 0) this.#warm.set(w.key, list);
      else this.#warm.delete(w.key);
      warm += list.length + have;
    }
    const now = Date.now();
    this.#pruneExpected(now);
    budget -= this.#readyAhead(now, budget);
    const idle = Math.max(0, this.#poolSize - warm) +
      Math.max(0, Math.min(this.#expectedIdle(), budget));
    while (trim && this.#idle.length > idle) this.#idle.shift()!.kill();
    while (this.#idle.length < idle && this.#poolFailures < MAX_POOL_FAILURES && this.#mayStart()) {
      const proc = this.#start();
      this.#idle.push(proc);
      proc.ready.then(() => void (this.#poolFailures = 0), () => {});
    }
  }

  /** A process whose worker starts now, ahead of the job that will use it. */
  #startWarm(template: WorkerTemplate): SandboxProcess {
    const started = performance.now();
    const proc = this.#start();
    proc.launch(template);
    proc.ready.then(() => this.#demand.readyTook(performance.now() - started), () => {});
    return proc;
  }

  /**
   * A process already readied for a job's key, if the pool has one: one of
   * its principal's that served the same key and runs a fresh worker for it,
   * or one whose worker was started ahead; ready workers first.
   */
  #takeReadied(spec: LaunchSpec): SandboxProcess | undefined {
    const own = workerKey(spec, true);
    const base = workerKey(spec, false);
    const recycled = this.#recycled.get(own);
    const warm = this.#warm.get(base);
    // A worker that has loaded its agent first, the newest first (an older
    // one may be about to be trimmed); then one still loading.
    const proc = takeReady(recycled?.procs) ?? takeReady(warm) ?? recycled?.procs.pop() ??
      warm?.pop();
    if (recycled?.procs.length === 0) this.#recycled.delete(own);
    if (warm?.length === 0) this.#warm.delete(base);
    return proc;
  }

  /** A process for a job: one readied for its key, an idle one, or a new one. */
  #take(
    spec: LaunchSpec,
    proc: SandboxProcess = this.#takeReadied(spec) ?? this.#idle.shift() ?? this.#start(),
  ): SandboxProcess {
    proc.launch({ agentUrl: spec.agentUrl, permissions: spec.permissions, egress: spec.egress });
    return proc;
  }

  /**
   * Starts a job: in a fresh worker (one started ahead for its key when the
   * pool has one), or for an agent with `sharing`, in a worker of its key
   * that has room.
   *
   * @param spec what to start
   * @param handlers where its messages go
   * @returns the channel; ending it ends or releases the worker
   */
  launch(spec: LaunchSpec, handlers: ChannelHandlers): AgentChannel {
    if (this.#closed) throw new Error("sandbox is closed");
    this.#poolFailures = 0;
    if (spec.sharing) return this.#launchShared(workerKey(spec), spec, spec.sharing, handlers);
    this.#demand.note(workerKey(spec, false), spec, Date.now());
    const channel = new WaitingChannel(handlers, this.#countLive(workerKey(spec, true)));
    this.#holdSpares();
    const ahead = this.#freshWaiting.length;
    this.#freshWaiting.push({ spec, channel, since: Date.now(), ahead });
    this.#serveFresh();
    if (channel.waiting && this.#freshWaiting.length > MAX_FRESH_WAITING) {
      this.#freshWaiting.pop();
      channel.refuse(
        `${MAX_FRESH_WAITING} jobs already wait for a sandbox process; ${BUSY}`,
        "sandbox_busy",
      );
      return channel;
    }
    if (channel.waiting) {
      this.#backlogSince ??= Date.now();
      this.#armWaitTimer();
    }
    this.#queueRefill();
    return channel;
  }

  /**
   * Counts a principal that opened a session for the pool: until it has a
   * shared worker that served a job (or for {@linkcode EXPECT_MS}), the pool
   * readies ahead, within `warmMax`, a worker of each sharing agent for it,
   * under its own key: the principal, the agent and the permissions its
   * last key had (any principal's, within {@linkcode EXPECT_MS}), or before
   * any job of a sharing agent, those of an empty lease, for every sharing
   * agent (each principal's first agent before anyone's second). Its first
   * job then finds its worker up instead of starting one beside every other
   * new key's (500 sessions of 10 principals opening on a cold server: ten
   * workers starting together on 2 cores, each key's first ready 0.4–0.55
   * s after its first job, measured). A worker readied ahead is a shared
   * worker of exactly that key: it never serves another principal or
   * permission set, and a job of the principal and agent with another key
   * discards it while it has served nothing. Without templates (no sharing
   * agent), the pool keeps an idle process for the principal instead.
   *
   * @param principal who opened the session
   * @param templates each sharing agent's job under an empty lease
   */
  expect(principal: string, templates: readonly AheadTemplate[] = []): void {
    if (this.#closed || this.#poolSize === 0) return;
    this.#aheadTemplates = templates;
    const now = Date.now();
    const known = this.#expected.get(principal);
    if (known) {
      known.at = now;
      return;
    }
    this.#expected.set(principal, { at: now, readied: new Set() });
    this.#queueRefill();
  }

  /**
   * Forgets expected principals past {@linkcode EXPECT_MS} or with a shared
   * worker that served a job (their jobs have come), and sharing agents'
   * last keys past it.
   */
  #pruneExpected(now: number): void {
    const working = new Set<string>();
    for (const [key, list] of this.#shared) {
      if (list.some((w) => w.served > 0)) working.add(principalOf(key));
    }
    for (const [principal, e] of this.#expected) {
      if (now - e.at > EXPECT_MS || working.has(principal)) this.#expected.delete(principal);
    }
    for (const [url, last] of this.#lastShared) {
      if (now - last.at > EXPECT_MS) this.#lastShared.delete(url);
    }
  }

  /** Expected principals without any shared worker: each wants an idle process. */
  #expectedIdle(): number {
    const holding = new Set<string>();
    for (const key of this.#shared.keys()) holding.add(principalOf(key));
    let n = 0;
    for (const principal of this.#expected.keys()) if (!holding.has(principal)) n++;
    return n;
  }

  /**
   * The templates to ready workers of ahead: each sharing agent launched
   * within {@linkcode EXPECT_MS} with its last key's, newest first, or,
   * before any, every sharing agent's empty-lease template.
   */
  #aheadRanked(): AheadTemplate[] {
    if (this.#lastShared.size === 0) return [...this.#aheadTemplates];
    return [...this.#lastShared.values()].sort((a, b) => b.at - a.at).map((l) => l.template);
  }

  /**
   * Readies workers ahead for the expected principals (see
   * {@linkcode expect}) while `budget` and the start limit allow: every
   * principal's first template before anyone's second.
   *
   * @returns the processes held by workers readied ahead that served nothing yet
   */
  #readyAhead(now: number, budget: number): number {
    let held = 0;
    for (const list of this.#shared.values()) {
      for (const w of list) if (w.ahead && w.served === 0 && !w.retiring) held++;
    }
    for (const template of this.#aheadRanked()) {
      for (const [principal, e] of this.#expected) {
        const agentUrl = template.agentUrl;
        if (e.readied.has(agentUrl)) continue;
        const key = workerKey({ jobId: "", principal, ...template }, true);
        if (this.#shared.has(key)) continue;
        if (held >= budget || !this.#mayStart()) return held;
        e.readied.add(agentUrl);
        const proc = this.#start();
        proc.launch({
          agentUrl: template.agentUrl,
          permissions: template.permissions,
          egress: template.egress,
        });
        const worker: SharedWorker = {
          proc,
          sharing: template.sharing,
          since: now,
          served: 0,
          retiring: false,
          idleSince: now,
          ahead: { principal, agentUrl: template.agentUrl },
        };
        this.#shared.set(key, [worker]);
        armIdle(worker, template.sharing.idleSec * 1000);
        held++;
      }
    }
    return held;
  }

  /**
   * Discards the workers readied ahead for `principal` and `agentUrl` under
   * a key other than `key` that served nothing: the principal's first job
   * of the agent came with another key (another lease), so they guessed
   * wrong, and they hold a process each.
   */
  #discardAhead(principal: string, agentUrl: string, key: string): void {
    for (const [other, list] of this.#shared) {
      if (other === key) continue;
      for (const w of list) {
        if (
          w.ahead?.principal !== principal || w.ahead.agentUrl !== agentUrl || w.served > 0 ||
          w.retiring
        ) continue;
        w.retiring = true;
        w.proc.kill();
      }
    }
  }

  /**
   * Why a job of this agent submitted now should be refused rather than
   * accepted, if it should: {@linkcode MAX_FRESH_WAITING} jobs wait already,
   * or its expected wait for a worker (the jobs queued ahead, plus itself,
   * times the time each has recently taken to clear, or the age of the
   * oldest, whichever is longer) is past the limit, and the queue is not a
   * young burst (fewer than {@linkcode MIN_QUEUE_REFUSED} jobs, the oldest
   * within the limit). The limit is `maxQueueMs`, or a tenth of it once the
   * queue has not emptied for a quarter of it (overload, not a burst).
   * Agents that share workers queue per key and are not refused here.
   *
   * @param agent the agent's module and sharing
   * @returns the refusal's message, or undefined to accept
   */
  refusal(agent: { sharing?: Sharing }): string | undefined {
    if (agent.sharing || this.#closed) return undefined;
    const queued = this.#freshWaiting.filter((w) => !w.channel.ended);
    if (queued.length === 0) return undefined;
    if (queued.length >= MAX_FRESH_WAITING) {
      return `${queued.length} jobs already wait for a sandbox process; ${BUSY}`;
    }
    const now = Date.now();
    const oldest = now - queued[0].since;
    const overloaded = this.#backlogSince !== undefined &&
      now - this.#backlogSince > this.#maxQueueMs / STANDING_PART;
    const limit = overloaded ? this.#maxQueueMs / OVERLOAD_PART : this.#maxQueueMs;
    if (queued.length < MIN_QUEUE_REFUSED && oldest <= limit) return undefined;
    const expected = Math.max(oldest, (queued.length + 1) * this.#perPlaceMs);
    if (expected <= limit) return undefined;
    return `${queued.length} jobs already wait for a sandbox process, about ` +
      `${Math.round(expected)} ms (the limit is ${Math.round(limit)} ms${
        overloaded ? ", a queue that has not emptied" : ""
      }); ${BUSY}`;
  }

  /** Whether the pool may start a process ahead of demand: room to start, and no job waiting. */
  #mayStart(): boolean {
    return this.#freshWaiting.length === 0 && this.#startsDue.size === 0 &&
      this.#startingCount() < MAX_STARTING;
  }

  /** Processes starting now (spawned, their worker not yet ready). */
  #startingCount(): number {
    let n = 0;
    for (const p of this.#all.keys()) if (p.starting) n++;
    return n;
  }

  /**
   * Gives waiting fresh jobs a process: one ready or readying for their key,
   * an idle one, or a new one while fewer than {@linkcode MAX_STARTING}
   * processes are starting (past that, more starts only slow all of them).
   */
  #serveFresh(): void {
    while (this.#freshWaiting.length > 0 && !this.#closed) {
      const next = this.#freshWaiting[0];
      if (next.channel.ended) {
        this.#freshWaiting.shift();
        continue;
      }
      const proc = this.#takeReadied(next.spec) ??
        (this.#startingCount() < MAX_STARTING ? this.#take(next.spec) : undefined);
      if (!proc) break;
      this.#freshWaiting.shift();
      this.#bindFresh(next.spec, proc, next.channel);
      // Its wait lasts until its worker is ready: a job handed a process
      // still starting waits on, outside the queue.
      const learn = () => {
        const waited = Date.now() - next.since;
        if (next.ahead > 0 || waited > 0) {
          this.#perPlaceMs = 0.8 * this.#perPlaceMs + 0.2 * (waited / (next.ahead + 1));
        }
      };
      if (proc.workerReady) learn();
      else this.#readyWaits.set(proc, learn);
    }
    if (this.#freshWaiting.length === 0) this.#backlogSince = undefined;
  }

  #bindFresh(spec: LaunchSpec, proc: SandboxProcess, channel: WaitingChannel): void {
    const key = workerKey(spec, false);
    proc.launch({ agentUrl: spec.agentUrl, permissions: spec.permissions, egress: spec.egress });
    const j = proc.attach(spec.jobId, channel.handlers);
    const returns = proc.served < this.#jobsPerProcess;
    if (returns) this.#countReturning(key, 1);
    this.#inFlight++;
    channel.bind((msg) => proc.send({ c: "post", msg: { ...msg, j } as HostMessage }), (
      how,
      delivered,
    ) => {
      proc.detach(j);
      // Starting the next worker takes ~20 ms of CPU, a new process more:
      // after the outcome is out, not beside its commit and delivery.
      // Delivery hands it to the socket; the bytes still cross the gate's
      // relay to the client in the turns that follow, so that work waits
      // for the next timer turn (at once, a recycle cost each fresh job
      // ~0.6 ms at 20 jobs/s, measured).
      const afterOutcome = (then: () => void) => {
        const later = () => void setTimeout(then, 0);
        if (delivered) delivered.then(later, later);
        else later();
      };
      if (how === "done") this.#demand.served(key);
      if (how !== "done" || !returns || this.#closed) {
        if (returns) this.#countReturning(key, -1);
        proc.kill();
        return afterOutcome(() => this.#landed());
      }
      const own = workerKey(spec, true);
      afterOutcome(() => {
        this.#landed();
        void this.#recycle(key, own, proc);
      });
    });
  }

  /**
   * Counts a fresh job of `key` as live until the returned function is
   * called, and keeps the most live at once as the key's recent demand.
   */
  #countLive(key: string): () => void {
    const live = (this.#freshLive.get(key) ?? 0) + 1;
    this.#freshLive.set(key, live);
    const now = Date.now();
    const peak = this.#freshPeak.get(key);
    if (!peak || live >= peak.n || now - peak.at > SPARE_DEMAND_MS) {
      this.#freshPeak.set(key, { n: live, at: now });
    }
    return () => {
      const n = (this.#freshLive.get(key) ?? 1) - 1;
      if (n > 0) this.#freshLive.set(key, n);
      else this.#freshLive.delete(key);
    };
  }

  /**
   * Sizes each idle recycled process's spares by its key's recent demand:
   * as many that the key's processes together hold a fresh worker for each
   * of the most jobs it had at once in the last {@linkcode SPARE_DEMAND_MS},
   * within a quarter of a process's memory ceiling and the spares' memory
   * budget, each spare charged what its key's processes measure it costs
   * (at least {@linkcode SPARE_WORKER_MB}). A key not measured yet gets one
   * spare a process until it is, so a heavy agent's first spares cannot
   * overrun the budget; spares past what the budget holds at the measured
   * cost are stopped. Only while no fresh job is in flight or waiting, and
   * none came for {@linkcode SPARE_IDLE_MS}: a spare's start costs what the
   * job's own worker would, and inside a burst it would only take the cores
   * from the burst's jobs (it is their next jobs', later).
   * Each spare still serves one job; a key without recent demand keeps none.
   */
  #wantSpares(): void {
    if (this.#closed || this.#inFlight > 0 || this.#freshWaiting.length > 0) return;
    const now = Date.now();
    const wait = this.#lastFresh + SPARE_IDLE_MS - now;
    if (wait > 0) {
      if (this.#spareTimer === undefined) {
        this.#spareTimer = setTimeout(() => {
          this.#spareTimer = undefined;
          this.#wantSpares();
        }, wait);
        Deno.unrefTimer(this.#spareTimer);
      }
      return;
    }
    for (const [key, peak] of this.#freshPeak) {
      if (now - peak.at > SPARE_DEMAND_MS) this.#freshPeak.delete(key);
    }
    for (const key of this.#spareCost.keys()) {
      if (!this.#freshPeak.has(key)) this.#spareCost.delete(key);
    }
    let budget = this.#spareBudget;
    let count = MAX_SPARES;
    let measuring = false;
    for (const [key, r] of this.#recycled) {
      const procs = r.procs.filter((p) => p.workerReady);
      const fresh = procs.map((p) => p.spareBytes).filter((b) => b !== undefined);
      // The cost now, not the worst seen: a process's resident set only
      // settles lower once its allocator gives pages back.
      if (fresh.length > 0 && this.#freshPeak.has(key)) {
        this.#spareCost.set(key, Math.max(...fresh));
      }
      const measured = this.#spareCost.get(key);
      const cost = measured ?? SPARE_WORKER_MB * 1024 * 1024;
      if (measured === undefined && procs.some((p) => p.spareMeasuring)) measuring = true;
      const perProcess = measured === undefined ? 1 : Math.min(
        MAX_SPARES_PER_PROCESS,
        Math.floor(this.#spawn.memoryMb * 1024 * 1024 / 4 / cost),
      );
      const peak = this.#freshPeak.get(key)?.n ?? 0;
      const each = procs.length === 0 ? 0 : Math.ceil(peak / procs.length) - 1;
      for (const p of procs) {
        const n = Math.max(0, Math.min(each, perProcess, count, Math.floor(budget / cost)));
        budget -= n * cost;
        count -= n;
        p.spare(n);
      }
    }
    // A first spare's cost shows once the process has sampled it: size again then.
    if (measuring && this.#spareTimer === undefined) {
      this.#spareTimer = setTimeout(() => {
        this.#spareTimer = undefined;
        this.#wantSpares();
      }, SPARE_MEASURE_MS);
      Deno.unrefTimer(this.#spareTimer);
    }
  }

  /**
   * A fresh job came: idle processes stop readying spares at what they hold
   * (their starts would run beside it), until the launcher is idle again.
   */
  #holdSpares(): void {
    this.#lastFresh = Date.now();
    for (const r of this.#recycled.values()) for (const p of r.procs) p.holdSpares();
  }

  /** Counts a process that will (or, at -1, will not any more) come back to the pool for `key`. */
  #countReturning(key: string, by: 1 | -1): void {
    const n = (this.#returning.get(key) ?? 0) + by;
    if (n > 0) this.#returning.set(key, n);
    else this.#returning.delete(key);
    // One that will not come back leaves a gap to fill.
    if (by < 0) this.#queueRefill();
  }

  /**
   * Readies a process whose job ended with a result for the next job of the
   * same key, in a fresh worker; it rejoins the warm pool once the process
   * confirms that nothing of the last job still runs.
   */
  async #recycle(base: string, own: string, proc: SandboxProcess): Promise<void> {
    const ok = await proc.recycle();
    this.#countReturning(base, -1);
    if (!ok || this.#closed) return proc.kill();
    const r = this.#recycled.get(own) ?? { base, procs: [] };
    r.procs.push(proc);
    this.#recycled.set(own, r);
    this.#serveFresh();
    this.#wantSpares();
    this.#queueRefill();
  }

  /**
   * Starts a job of an agent that shares its workers: in a worker of its key
   * with room, else in a new one while the key has fewer than
   * {@linkcode MAX_SHARED_WORKERS}, else once one of them has room. A job
   * that waits longer than `maxWaitMs` ends with a
   * retryable `INTERNAL_ERROR` (`cap: "sandbox_busy"`) instead: the machine
   * cannot keep up, and the client should retry later.
   */
  #launchShared(
    key: string,
    spec: LaunchSpec,
    sharing: Sharing,
    handlers: ChannelHandlers,
  ): AgentChannel {
    const { agentUrl, permissions, egress } = spec;
    this.#lastShared.set(agentUrl, {
      template: { agentUrl, permissions, egress, sharing },
      at: Date.now(),
    });
    if (!this.#shared.has(key)) this.#discardAhead(spec.principal, agentUrl, key);
    const channel = new WaitingChannel(handlers);
    const queue = this.#sharedWaiting.get(key) ?? [];
    queue.push({ spec, sharing, channel, since: Date.now() });
    this.#sharedWaiting.set(key, queue);
    this.#serveShared(key);
    if (channel.waiting && queue.length > MAX_SHARED_WAITING) {
      queue.pop();
      channel.refuse(
        `${MAX_SHARED_WAITING} jobs already wait for this agent's workers; ${BUSY}`,
        "sandbox_busy",
      );
      return channel;
    }
    if (channel.waiting) this.#armWaitTimer();
    return channel;
  }

  /**
   * Hands the jobs waiting for a shared worker of `key` to workers with room.
   * Starting a process (a spawn, a socket: ~20 ms of this thread under
   * load) is the longest step of a job's start, so it is never done on top
   * of other work: the key waits for {@linkcode #startDue}, which starts
   * one process per turn, at the start of a turn.
   *
   * @param mayStart start one process (only `#startDue` may)
   */
  #serveShared(key: string, mayStart = false): void {
    const queue = this.#sharedWaiting.get(key);
    while (queue && queue.length > 0 && !this.#closed) {
      const next = queue[0];
      if (next.channel.ended) {
        queue.shift();
        continue;
      }
      const list = this.#shared.get(key) ?? [];
      const usable = list.filter((x) => !x.retiring && !x.proc.dead);
      const w = usable.find((x) => x.proc.workerReady && x.proc.active < x.sharing.concurrency);
      if (w) {
        queue.shift();
        this.#bindShared(key, w, next.spec, next.channel);
        continue;
      }
      // No ready worker has room: the job waits for the first of its key's
      // workers that has, not for one of them in particular (a busy echo
      // worker has room again in a few ms, a new process in ~100 ms). One
      // more worker starts unless one already is (a second start beside it
      // only slows both) or the key is at its limit.
      if (usable.length >= MAX_SHARED_WORKERS) break;
      const now = Date.now();
      if (usable.some((x) => !x.proc.workerReady && now - x.since < SLOW_START_MS)) break;
      let proc = this.#takeReadied(next.spec) ?? this.#idle.shift();
      if (!proc) {
        if (!mayStart) {
          this.#deferStart(key);
          break;
        }
        mayStart = false;
        proc = this.#start();
      }
      list.push({
        proc: this.#take(next.spec, proc),
        sharing: next.sharing,
        since: now,
        served: 0,
        retiring: false,
      });
      this.#shared.set(key, list);
      this.#queueRefill();
    }
    if (queue?.length === 0) this.#sharedWaiting.delete(key);
  }

  /** Hands a shared worker that came up the jobs waiting for its key. */
  #sharedReady(proc: SandboxProcess): void {
    for (const [key, list] of this.#shared) {
      if (list.some((x) => x.proc === proc)) return queueMicrotask(() => this.#serveShared(key));
    }
  }

  /** Serves `key` again in a later turn, after the keys deferred before it. */
  #deferStart(key: string): void {
    this.#startsDue.add(key);
    this.#kickStarts();
  }

  /**
   * Serves the deferred keys in a later turn, while fewer than
   * {@linkcode MAX_STARTING} processes are starting; past that, a process
   * that stops starting (or dies) kicks them again.
   */
  #kickStarts(): void {
    if (this.#startsDue.size === 0 || this.#startingCount() >= MAX_STARTING) return;
    this.#startsTimer ??= setTimeout(() => this.#startDue(), 0);
  }

  /**
   * Serves the first deferred key, starting its process, if the turn's
   * budget is not spent yet, or whatever the budget once the keys have
   * waited {@linkcode START_WAIT_TURNS} turns (a busy event loop must not
   * starve them); the others wait for the next turn, in order. Keys keep
   * their order while {@linkcode MAX_STARTING} processes are starting: the
   * first key to ask gets its worker first, instead of every key's start
   * sharing the cores and all of them coming up late.
   */
  #startDue(): void {
    this.#startsTimer = undefined;
    if (this.#startingCount() >= MAX_STARTING) return;
    const keys = [...this.#startsDue];
    this.#startsDue.clear();
    const force = ++this.#startsWaited >= START_WAIT_TURNS;
    let served = false;
    for (const key of keys) {
      if (served || (sliceSpent() && !force)) {
        this.#deferStart(key);
        continue;
      }
      served = true;
      this.#startsWaited = 0;
      this.#serveShared(key, true);
    }
  }

  #bindShared(key: string, worker: SharedWorker, spec: LaunchSpec, channel: WaitingChannel): void {
    worker.idleSince = undefined;
    if (++worker.served >= worker.sharing.maxJobs) worker.retiring = true;
    const proc = worker.proc;
    const j = proc.attach(spec.jobId, channel.handlers);
    channel.bind((msg) => proc.send({ c: "post", msg: { ...msg, j } as HostMessage }), (how) => {
      proc.detach(j);
      if (how !== "done") worker.retiring = true;
      if (proc.active === 0) {
        if (worker.retiring) proc.kill();
        else {
          worker.idleSince = Date.now();
          armIdle(worker, worker.sharing.idleSec * 1000);
        }
      }
      // Room freed, or a worker retired: the next waiting job may go.
      queueMicrotask(() => this.#serveShared(key));
    });
  }

  /** Ends jobs that waited too long for a worker, while any wait. */
  #armWaitTimer(): void {
    if (this.#waitTimer !== undefined) return;
    this.#waitTimer = setInterval(() => {
      const now = Date.now();
      const expire = <T extends { channel: WaitingChannel; since: number }>(queue: T[]) => {
        for (const item of queue.splice(0)) {
          if (item.channel.ended) continue;
          if (now - item.since <= this.#maxWaitMs) {
            queue.push(item);
            continue;
          }
          item.channel.refuse(
            `no sandbox worker came free for this job within ${this.#maxWaitMs / 1000} s; ${BUSY}`,
            "sandbox_busy",
          );
        }
      };
      this.#serveFresh();
      expire(this.#freshWaiting);
      if (this.#freshWaiting.length === 0) this.#backlogSince = undefined;
      for (const [key, queue] of this.#sharedWaiting) {
        expire(queue);
        // A worker slow to start lets its key's jobs start another.
        if (queue.length > 0) this.#serveShared(key);
        if (queue.length === 0) this.#sharedWaiting.delete(key);
      }
      if (this.#sharedWaiting.size === 0 && this.#freshWaiting.length === 0) {
        clearInterval(this.#waitTimer);
        this.#waitTimer = undefined;
      }
    }, 250);
    Deno.unrefTimer(this.#waitTimer);
  }

  /** Kills every process, waits for them to exit and removes the control directory. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#trim);
    clearTimeout(this.#spareTimer);
    clearInterval(this.#waitTimer);
    clearTimeout(this.#startsTimer);
    clearTimeout(this.#refillDeferred);
    for (const list of this.#shared.values()) for (const w of list) clearTimeout(w.idle);
    const procs = [...this.#all.keys()];
    this.#idle = [];
    this.#warm.clear();
    this.#recycled.clear();
    this.#shared.clear();
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => p.process.status));
    await this.#spawn.spawner.close();
    await this.#spawn.threads.close();
    await Deno.remove(this.#spawn.controlDir, { recursive: true }).catch(() => {});
  }
}
