/**
 * Starts agent workers in this process. Fast, but a worker that exhausts
 * its heap takes the whole process down (fatal V8 OOM), so production runs
 * use {@linkcode HostLauncher} instead; this one serves tests, embedding
 * and benchmarks that compare the two.
 *
 * Each job gets a fresh worker, never one another job used. `new Worker`
 * blocks this thread until the worker's thread has built its runtime
 * (~30 ms of wall time on a busy 2-core host, of which ~0.3 ms is this
 * thread's CPU): 50 jobs launched at once held the event loop for 1.5 –
 * 2.4 s, during which no event of the jobs already running moved. So
 * workers are created one per event-loop turn, the jobs' first, and
 * messages posted meanwhile wait for theirs.
 *
 * Start-up stays off the path from submit to first event where it can:
 * like the process sandbox, the launcher keeps workers started ahead for
 * the keys recent jobs used ({@linkcode workerKey}), as many as their
 * recent rate and largest burst call for, within `warmMax`. They are
 * started in idle time (once no job is in flight), and stopped when their
 * key's demand ends.
 *
 * @module
 */
import type {
  AgentChannel,
  AgentLauncher,
  ChannelHandlers,
  JobExit,
  LaunchSpec,
} from "./channel.ts";
import { workerEntryUrl } from "./worker/entry.ts";
import { EgressProxy } from "./egress_proxy.ts";
import { readPosted } from "./worker/posted.ts";
import { WarmDemand, workerKey, type WorkerTemplate } from "./warm_demand.ts";

/** Options of {@linkcode LocalLauncher}. */
export interface LocalLauncherOptions {
  /**
   * Whether to start workers ahead of the jobs that use them: 0 starts each
   * on demand; any other value (the default, 2) keeps a pool sized by
   * recent demand, up to `warmMax`.
   */
  warmPool?: number;
  /**
   * Most workers held started ahead at once, each ~8 MiB of this process.
   * Default: {@linkcode defaultLocalWarmMax}.
   */
  warmMax?: number;
}

/** What an idle worker is budgeted at (MiB): twice the ~8 MiB one adds with `ticker` (measured). */
const IDLE_WORKER_MB = 16;

/**
 * The default most warm in-process workers: as many as a sixteenth of the
 * machine's memory holds at {@linkcode IDLE_WORKER_MB} each (the budget the
 * process sandbox's pool has), clamped to 8 – 64, so that a burst of 50
 * jobs finds a worker each on a machine of 16 GiB or more.
 *
 * @example
 * ```ts
 * import { defaultLocalWarmMax } from "./local_launcher.ts";
 * console.log(defaultLocalWarmMax(8 * 1024 ** 3)); // 32
 * ```
 *
 * @param totalBytes the machine's memory (default: `Deno.systemMemoryInfo().total`)
 * @returns the count
 */
export function defaultLocalWarmMax(totalBytes?: number): number {
  let total = totalBytes;
  try {
    total ??= Deno.systemMemoryInfo().total;
  } catch {
    // Without `sys` permission: the smallest budget.
    total = 0;
  }
  return Math.min(64, Math.max(8, Math.floor(total / 16 / 1024 / 1024 / IDLE_WORKER_MB)));
}

/** How often the pool drops warm workers nobody asks for any more (ms). */
const TRIM_MS = 5_000;

/** A worker (once created), its egress proxy and where its messages go once a job holds it. */
interface LocalWorker {
  template: WorkerTemplate;
  /** Unset until its turn to be created comes. */
  worker?: Worker;
  proxy?: EgressProxy;
  /** Messages posted before the worker was created, in order. */
  queued: unknown[];
  /** The job's handlers; unset while the worker waits in the pool. */
  handlers?: ChannelHandlers;
  /** When its event loop last posted (ms since the epoch), once it has. */
  aliveAt?: number;
  /** When it was created (ms since the epoch). */
  startedAt?: number;
  stopped: boolean;
  /** Takes it out of the pool when it dies there. */
  onPoolDeath?: () => void;
}

/** Launches Web Workers in the runtime's own process. */
export class LocalLauncher implements AgentLauncher {
  /** Each live worker's end: terminates it and closes its egress proxy. */
  #ends = new Set<() => void>();
  /** Workers started ahead, by worker key, oldest first. */
  #warm = new Map<string, LocalWorker[]>();
  /** Workers to create, jobs' first, one per turn. */
  #toCreate: { jobs: LocalWorker[]; pool: LocalWorker[] } = { jobs: [], pool: [] };
  #createTimer: ReturnType<typeof setTimeout> | undefined;
  #demand = new WarmDemand({ bursts: true });
  #pooled: boolean;
  #warmMax: number;
  /** Jobs whose worker is still running them. */
  #inFlight = 0;
  #refillTimer: ReturnType<typeof setTimeout> | undefined;
  #trim: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /**
   * A launcher of in-process workers.
   *
   * @param options the warm pool's switch and budget
   */
  constructor(options: LocalLauncherOptions = {}) {
    this.#pooled = (options.warmPool ?? 2) > 0;
    this.#warmMax = options.warmMax ?? defaultLocalWarmMax();
  }

  /** Workers started ahead and waiting for a job, in all. */
  get warmCount(): number {
    let n = 0;
    for (const list of this.#warm.values()) n += list.length;
    return n;
  }

  /**
   * Starts a job in a fresh worker: one started ahead for its key when the
   * pool holds one.
   *
   * @param spec what to start
   * @param handlers where its messages go
   * @returns the channel
   */
  launch(spec: LaunchSpec, handlers: ChannelHandlers): AgentChannel {
    if (this.#closed) throw new Error("sandbox is closed");
    const key = workerKey(spec, false);
    if (this.#pooled) this.#demand.note(key, spec, Date.now());
    const w = this.#takeWarm(key) ?? this.#queue(this.#newWorker(spec));
    w.handlers = handlers;
    if (w.aliveAt !== undefined) handlers.alive?.(w.aliveAt);
    this.#inFlight++;
    let alive = true;
    const end = (how?: JobExit, delivered?: Promise<unknown>) => {
      if (!alive) return;
      alive = false;
      this.#stop(w);
      this.#ends.delete(end);
      if (how === "done") this.#demand.served(key);
      // The job has landed once its outcome is out, not when its worker ends.
      const landed = () => void (--this.#inFlight === 0 && this.#refillSoon());
      if (delivered) delivered.then(landed, landed);
      else landed();
    };
    this.#ends.add(end);
    this.#armTrim();
    return {
      // One job per worker here: agents' `reuse` and `concurrency` apply to
      // sandbox processes only.
      post: (msg) => {
        if (msg.t === "credentials") w.proxy?.credentials.set(0, msg.credentials);
        if (!alive) return;
        if (w.worker) w.worker.postMessage({ ...msg, j: 0 });
        else w.queued.push({ ...msg, j: 0 });
      },
      // A forced end of a worker stuck in synchronous code may leave its
      // thread running (Deno 2.9); only a process boundary fixes that, which
      // is why production uses HostLauncher.
      end,
    };
  }

  /**
   * A worker started ahead for `key`, a loaded one first, if the pool holds
   * one; one not yet created moves to the front of the creations.
   */
  #takeWarm(key: string): LocalWorker | undefined {
    const list = this.#warm.get(key);
    if (!list) return undefined;
    const i = list.findLastIndex((w) => w.aliveAt !== undefined);
    const w = i >= 0 ? list.splice(i, 1)[0] : list.pop()!;
    if (list.length === 0) this.#warm.delete(key);
    w.onPoolDeath = undefined;
    const waiting = this.#toCreate.pool.indexOf(w);
    if (waiting >= 0) {
      this.#toCreate.pool.splice(waiting, 1);
      this.#toCreate.jobs.push(w);
    }
    return w;
  }

  /** A worker of a key, to be created in its turn; its egress proxy (if any) takes credentials at once. */
  #newWorker(template: WorkerTemplate): LocalWorker {
    const { agentUrl, permissions, egress } = template;
    return {
      template: { agentUrl, permissions, egress },
      proxy: egress.length > 0 ? new EgressProxy(egress) : undefined,
      queued: [],
      stopped: false,
    };
  }

  /** Queues a job's worker for creation, ahead of the pool's. */
  #queue(w: LocalWorker): LocalWorker {
    this.#toCreate.jobs.push(w);
    this.#armCreate();
    return w;
  }

  #armCreate(): void {
    this.#createTimer ??= setTimeout(() => this.#createNext(), 0);
  }

  /** Creates the next worker due, and arms the next turn's if more are due. */
  #createNext(): void {
    this.#createTimer = undefined;
    let w;
    do w = this.#toCreate.jobs.shift() ?? this.#toCreate.pool.shift(); while (w?.stopped);
    if (w) this.#create(w);
    if (this.#toCreate.jobs.length + this.#toCreate.pool.length > 0) this.#armCreate();
  }

  /**
   * Creates a worker. Until a job holds it, its messages (its `ready` and
   * beats) only mark it alive, and its death takes it out of the pool.
   */
  #create(w: LocalWorker): void {
    const { agentUrl, permissions } = w.template;
    const proxy = w.proxy;
    const worker = new Worker(workerEntryUrl(agentUrl, proxy?.config), {
      type: "module",
      name: "agent",
      deno: {
        permissions: { ...permissions, net: proxy ? [proxy.address] : false },
        // deno-lint-ignore no-explicit-any
      } as any,
    });
    w.worker = worker;
    w.startedAt = Date.now();
    worker.onmessage = (e: MessageEvent) => {
      if (w.aliveAt === undefined) this.#demand.readyTook(Date.now() - w.startedAt!);
      w.aliveAt = Date.now();
      w.handlers?.message(readPosted(e.data).msg);
    };
    const died = (reason: string) => w.handlers ? w.handlers.crash(reason) : w.onPoolDeath?.();
    worker.onerror = (e: ErrorEvent) => {
      // Without this the worker's uncaught error would propagate to the runtime.
      e.preventDefault();
      died(e.message ?? "uncaught error in agent");
    };
    worker.onmessageerror = () => died("agent sent a message that could not be read");
    for (const msg of w.queued.splice(0)) worker.postMessage(msg);
  }

  /** Refills in the next turn: called once no job is in flight. */
  #refillSoon(): void {
    if (!this.#pooled || this.#refillTimer !== undefined) return;
    this.#refillTimer = setTimeout(() => this.#refill(), 0);
    Deno.unrefTimer(this.#refillTimer);
  }

  #armTrim(): void {
    if (!this.#pooled || this.#trim !== undefined) return;
    this.#trim = setInterval(() => this.#refill(true), TRIM_MS);
    Deno.unrefTimer(this.#trim);
  }

  /**
   * Brings the pool to what recent demand calls for, within `warmMax`.
   * It grows only while no job is in flight: creating a worker holds this
   * thread, which the jobs' events go through (a pool that refilled beside
   * 50 running tickers started 24 workers in the middle of their events).
   * It shrinks only when `trim` is set (every {@linkcode TRIM_MS}): the
   * wanted count moves by one as launches leave the demand window, and a
   * worker stopped then would be started again by the next launch. With no
   * key in demand, the trim timer stops.
   *
   * @param trim whether to stop workers beyond what demand calls for
   */
  #refill(trim = false): void {
    this.#refillTimer = undefined;
    if (this.#closed) return;
    const wanted = this.#demand.wanted(Date.now(), this.#warmMax);
    const want = new Map(wanted.map((w) => [w.key, w.n]));
    for (const [key, list] of this.#warm) {
      const n = want.get(key) ?? 0;
      while (list.length > n && (trim || n === 0)) this.#stop(list.shift()!);
      if (list.length === 0) this.#warm.delete(key);
    }
    let budget = this.#inFlight === 0 ? this.#warmMax - this.warmCount : 0;
    for (const { key, template, n } of wanted) {
      const list = this.#warm.get(key) ?? [];
      while (list.length < n && budget > 0) {
        budget--;
        const w = this.#newWorker(template);
        w.onPoolDeath = () => this.#poolDeath(key, w);
        list.push(w);
        this.#toCreate.pool.push(w);
      }
      if (list.length > 0) this.#warm.set(key, list);
    }
    if (this.#toCreate.pool.length > 0) this.#armCreate();
    if (wanted.length === 0 && this.#warm.size === 0) {
      clearInterval(this.#trim);
      this.#trim = undefined;
    }
  }

  /** A worker died in the pool (its module throws at import, say): the key's demand learns it. */
  #poolDeath(key: string, w: LocalWorker): void {
    const list = this.#warm.get(key);
    const i = list?.indexOf(w) ?? -1;
    if (i < 0) return;
    list!.splice(i, 1);
    if (list!.length === 0) this.#warm.delete(key);
    this.#stop(w);
    this.#demand.warmFailed(key);
  }

  /** Stops a worker, or its creation if it is not created yet. */
  #stop(w: LocalWorker): void {
    w.stopped = true;
    w.proxy?.close();
    w.worker?.terminate();
  }

  /** Terminates every worker and closes their egress proxies. */
  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#refillTimer);
    clearTimeout(this.#createTimer);
    clearInterval(this.#trim);
    for (const end of this.#ends) end();
    for (const list of this.#warm.values()) list.forEach((w) => this.#stop(w));
    this.#warm.clear();
    this.#toCreate = { jobs: [], pool: [] };
    return Promise.resolve();
  }
}
