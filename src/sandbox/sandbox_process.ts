/**
 * One sandbox process, as the runtime sees it: spawned with its one-time
 * intro on stdin, connected over its own control socket, its stdout and
 * stderr drained into the operator log, running at most one worker, which
 * serves the jobs attached to it (one, unless the agent shares its workers),
 * each by its slot. Killing it (SIGKILL) ends everything its jobs started.
 *
 * @module
 */
import type { Logger } from "../logger.ts";
import type { ChannelHandlers } from "./channel.ts";
import { type ControlConnection, ControlEndpoint } from "./control_socket.ts";
import { encodeFrame, type FrameReader, FrameTooLarge, FrameWriter } from "./host/frames.ts";
import {
  type HostCommand,
  type HostIntro,
  type HostReport,
  RSS_REPORT_MS,
} from "./host/protocol.ts";
import { perSpareBytes } from "./memory_ceiling.ts";
import { OUTPUT_BURST_BYTES, OUTPUT_RATE_BYTES } from "./output_drain.ts";
import type { SpawnedProcess, Spawner, SpawnExit } from "./spawner.ts";
import { webStorageScope } from "./web_storage.ts";
import { slotOf } from "./worker/slot.ts";
import type { ThreadCounter } from "./thread_count.ts";
import { nextTurn, sliceSpent } from "../turn_slice.ts";

/** How a sandbox process is started. */
export interface SpawnSpec {
  /** The deno executable. */
  denoPath: string;
  /** Its arguments (`run`, flags, the host's main module). */
  args: string[];
  /** Its whole environment. */
  env: Record<string, string>;
  /** The private directory control sockets live in. */
  controlDir: string;
  /** How long the process has to connect (ms). */
  connectTimeoutMs: number;
  /** The V8 heap cap it runs with, MiB (named when it is exhausted). */
  heapMb: number;
  /** The ceiling on its resident set, MiB: over it, its job ends and it is killed. */
  memoryMb: number;
  /** Where its output and faults are logged. */
  log: Logger;
  /** Deno's cache folder, where the process's web storage lives until it exits. */
  denoDir?: string;
  /** Counts a process's worker threads from outside it (before it is recycled). */
  threads: ThreadCounter;
  /** How often its workers beat (ms), from their warm-up on. */
  beatMs: number;
  /** Starts it off the main thread. */
  spawner: Spawner;
}

const HEAP_OOM = /heap out of memory|Reached heap limit|allocation failed/i;

/**
 * How much lower a sandbox process's CPU priority is than the runtime's
 * (its nice value, higher): when agents and the control plane want the
 * same cores, sessions, heartbeats and commits are served first (about 3:1
 * at 5), and no agent can starve them. Not more: at 10 a sandbox process
 * got a tenth of a core beside any other busy process on the host, and a
 * burst of sixty process starts on a loaded machine took tens of seconds.
 * Set as soon as it is spawned, while it is still loading, so the threads
 * it starts inherit it; best effort.
 */
export const SANDBOX_NICE_OFFSET = 5;

/** Times a recycled process's threads are counted, {@linkcode RECYCLE_CHECK_MS} apart. */
const RECYCLE_CHECKS = 20;
const RECYCLE_CHECK_MS = 25;

/**
 * How long after a change its resident set is surely sampled and, if it
 * moved, reported (ms): two sampling periods, as the sampler's interval and
 * the socket both add delay.
 */
const SAMPLED_MS = 2 * RSS_REPORT_MS;

/** How long after spares were asked of it a process is still expected to measure them (ms). */
const SPARE_MEASURE_WINDOW_MS = 10_000;

/** A spawned sandbox process. */
export class SandboxProcess {
  readonly process: SpawnedProcess;
  /** Settles once the control channel is authenticated; rejects if the process never made it. */
  readonly ready: Promise<void>;
  #spec: SpawnSpec;
  #control: ControlEndpoint;
  #out: FrameWriter | undefined;
  /** Commands sent before the channel was up. */
  #queued: Uint8Array[] = [];
  /** The jobs attached to the worker, by slot. */
  #slots = new Map<number, { jobId: string; handlers: ChannelHandlers }>();
  #nextSlot = 0;
  #served = 0;
  #launched = false;
  /** Set once the worker reports its agent module loaded and its warm-up run. */
  #workerReady = false;
  /** When the worker last posted anything (ms since the epoch): its event loop ran then. */
  #aliveAt = 0;
  #connected = false;
  /** Called when the process stops starting: connected (no worker yet), or its worker ready. */
  onSettled: (() => void) | undefined;
  /** Settles a pending {@linkcode recycle}. */
  #recycled: ((ok: boolean) => void) | undefined;
  /** Set once the process is gone or was told to go. */
  #dead = false;
  /** Worker threads the process said it holds after its last recycle (its spares included). */
  #expectThreads = 1;
  /** Spare workers it holds ready, as last reported. */
  #spares = 0;
  /** Spares last asked for; a recycle resets it (the process stops topping up then). */
  #sparesAsked = 0;
  /** Its resident set as last reported (bytes), for the operator metrics. */
  #rss: number | undefined;
  /** When its worker last reported ready (ms since the epoch). */
  #readyAt = 0;
  /** Its resident set when it was first asked for spares holding none: what they add to. */
  #spareBase: number | undefined;
  /** When its spares last changed (ms since the epoch). */
  #sparesAt = 0;
  /** When it was last asked for spares (ms since the epoch). */
  #sparesAskedAt = 0;

  /**
   * Spawns the process and starts connecting it.
   *
   * @param spec how
   * @param onExit called once the process has exited, whatever the reason
   */
  constructor(spec: SpawnSpec, onExit: (proc: SandboxProcess) => void) {
    this.#spec = spec;
    this.#control = new ControlEndpoint(spec.controlDir, spec.connectTimeoutMs);
    const storage = webStorageScope(spec.denoDir);
    // The flag goes before the main module: what follows it are the module's own arguments.
    const args = [...spec.args.slice(0, -1), storage.flag, ...spec.args.slice(-1)];
    // The spawn, the intro on stdin and the output drains run on the
    // spawner's thread: a start blocks until the child has exec'd.
    this.process = spec.spawner.spawn({
      command: spec.denoPath,
      args,
      env: spec.env,
      stdinLine: JSON.stringify(
        { ...this.#control.intro, ceiling: spec.memoryMb * 1024 * 1024 } satisfies HostIntro,
      ) + "\n",
      niceOffset: SANDBOX_NICE_OFFSET,
      stdout: this.#sink("stdout"),
      stderr: this.#sink("stderr"),
    });
    this.ready = this.#control.connected.then((c) => this.#serve(c));
    this.ready.catch((err) => {
      if (this.#dead) return;
      spec.log.warn("sandbox process failed to connect; killing it", { error: String(err) });
      this.kill();
    });
    this.process.status.then(async (status) => {
      this.#dead = true;
      this.#control.close();
      await storage.remove();
      if (this.#slots.size > 0) {
        const { reason, cap } = this.#exitReason(status);
        this.#crashAll(reason, cap);
      }
      onExit(this);
    });
  }

  /** The process id, once it started (undefined for the few ms before). */
  get pid(): number | undefined {
    return this.process.pid;
  }

  /** The jobs it serves now. */
  get jobIds(): string[] {
    return [...this.#slots.values()].map((s) => s.jobId);
  }

  /** Whether its worker was launched. */
  get launched(): boolean {
    return this.#launched;
  }

  /**
   * Whether it is still starting, and so still busy the machine's CPU: not
   * yet connected, or its worker not yet ready.
   */
  get starting(): boolean {
    return !this.#dead && (this.#launched ? !this.#workerReady : !this.#connected);
  }

  /**
   * Its resident set as it last reported it (every 200 ms once connected).
   *
   * @returns bytes, or undefined before the first report
   */
  get rssBytes(): number | undefined {
    return this.#rss;
  }

  /** Whether its worker has loaded the agent and can start a job at once. */
  get workerReady(): boolean {
    return this.#workerReady;
  }

  /** Whether it has exited or was killed. */
  get dead(): boolean {
    return this.#dead;
  }

  #sink(stream: "stdout" | "stderr") {
    const fields = () => ({ job: this.jobIds.join(",") || "(idle)", pid: this.pid, stream });
    return {
      line: (text: string) => this.#spec.log.info("agent output", { ...fields(), line: text }),
      dropped: (count: number) =>
        this.#spec.log.warn("agent output dropped by the log rate", { ...fields(), count }),
      flood: () =>
        this.fail(
          `agent wrote to ${stream} faster than ${OUTPUT_RATE_BYTES} bytes/s ` +
            `(bursts of ${OUTPUT_BURST_BYTES} bytes)`,
          "output",
        ),
    };
  }

  #exitReason(status: SpawnExit): { reason: string; cap?: string } {
    if (status.error !== undefined) {
      return { reason: `sandbox process could not be started: ${status.error}` };
    }
    if (HEAP_OOM.test(status.tail)) {
      return {
        reason: `agent exhausted its sandbox process's ${this.#spec.heapMb} MiB heap (memory)`,
        cap: "heap",
      };
    }
    return {
      reason: `sandbox process exited (code ${status.code}${
        status.signal ? `, ${status.signal}` : ""
      })`,
    };
  }

  #serve({ conn, frames }: ControlConnection): void {
    this.#out = new FrameWriter(conn);
    this.#connected = true;
    if (!this.#launched) this.onSettled?.();
    for (const bytes of this.#queued) this.#out.write(bytes);
    this.#queued = [];
    this.#read(frames);
  }

  /**
   * Dispatches the process's frames in order. One read can hold hundreds
   * (a shared worker's jobs all starting), so once the turn's budget is
   * spent the rest wait for a later turn, letting timers and I/O in.
   */
  async #read(frames: FrameReader): Promise<void> {
    try {
      await frames.pump((text) => {
        this.#dispatch(JSON.parse(text) as HostReport);
        if (sliceSpent()) return nextTurn();
      });
    } catch (err) {
      if (err instanceof FrameTooLarge) {
        this.fail(`sandbox process sent a ${err.message}`, "frame");
        return;
      }
    }
    // The channel closed: the process is going; its exit reports why.
  }

  #dispatch(r: HostReport): void {
    if (this.#dead) return;
    if ("m" in r) {
      this.#aliveAt = Date.now();
      const j = slotOf(r.m);
      if (j === undefined && (r.m as { t?: unknown })?.t === "ready") {
        this.#workerReady = true;
        this.#readyAt = this.#aliveAt;
        // Jobs given to it while it was loading had their grace; it is over.
        for (const s of [...this.#slots.values()]) s.handlers.alive?.(this.#aliveAt);
        this.onSettled?.();
        return;
      }
      // A message about no job (a beat, an exit, or one too broken to name
      // its slot) is about the whole worker: every job hears it.
      if (j === undefined) { for (const s of [...this.#slots.values()]) s.handlers.message(r.m); }
      else this.#slots.get(j)?.handlers.message(r.m);
    } else if ("rss" in r) {
      if (typeof r.rss === "number") this.#rss = r.rss;
      if (typeof r.rss === "number" && r.rss > this.#spec.memoryMb * 1024 * 1024) {
        this.fail(
          `agent's sandbox process reached ${Math.round(r.rss / 1048576)} MiB of memory; ` +
            `the memory ceiling is ${this.#spec.memoryMb} MiB`,
          "memory",
        );
      }
    } else if ("spares" in r) {
      if (typeof r.spares === "number") this.#spares = r.spares;
      this.#sparesAt = Date.now();
    } else if ("recycled" in r) {
      // Everything the old worker sent came before this report: the new
      // worker's jobs count their slots from 0 again.
      this.#nextSlot = 0;
      this.#expectThreads = typeof r.workers === "number" ? r.workers : 1;
      this.#recycled?.(true);
      this.#recycled = undefined;
    } else if ("crash" in r) {
      const cap = typeof r.cap === "string" ? r.cap : undefined;
      const slot = typeof r.j === "number" ? this.#slots.get(r.j) : undefined;
      if (slot) {
        this.#slots.delete(r.j!);
        slot.handlers.crash(String(r.crash), cap);
      } else if (r.j === undefined) this.fail(String(r.crash), cap);
    }
  }

  /**
   * Sends a command, now or once the channel is up.
   *
   * @param cmd the command
   */
  send(cmd: HostCommand): void {
    if (this.#dead) return;
    const bytes = encodeFrame(cmd);
    if (this.#out) this.#out.write(bytes);
    else this.#queued.push(bytes);
  }

  /**
   * Starts the process's one worker (for a job, or ahead of one).
   *
   * @param cmd what the worker runs and with which permissions
   */
  launch(cmd: Omit<Extract<HostCommand, { c: "launch" }>, "c" | "beatMs">): void {
    if (this.#launched) return;
    this.#launched = true;
    this.send({ c: "launch", ...cmd, beatMs: this.#spec.beatMs });
  }

  /**
   * Attaches a job to the worker. Slots count from 0 for each worker, so a
   * fresh worker's only job is slot 0. A job given a ready worker hears when
   * the worker last posted (`handlers.alive`); one given a worker still
   * loading hears it once the worker is ready.
   *
   * @param jobId the job
   * @param handlers where its worker's messages and end go
   * @returns the job's slot
   */
  attach(jobId: string, handlers: ChannelHandlers): number {
    const j = this.#nextSlot++;
    this.#served++;
    this.#slots.set(j, { jobId, handlers });
    if (this.#workerReady) handlers.alive?.(this.#aliveAt);
    return j;
  }

  /**
   * Detaches a job: nothing more of it reaches its handlers.
   *
   * @param j its slot
   */
  detach(j: number): void {
    this.#slots.delete(j);
  }

  /** Jobs attached now. */
  get active(): number {
    return this.#slots.size;
  }

  /** Jobs it has taken in all. */
  get served(): number {
    return this.#served;
  }

  /**
   * Replaces the worker, whose job ended with a result, with a fresh one
   * like it (a spare, when it holds one), for the next job of the same key;
   * then checks, from outside, that the process runs exactly the worker
   * threads it says it holds (the new one and its spares). A `node:worker_threads`
   * thread busy in a loop survives its parent worker (Deno 2.9.6, measured),
   * so a process with more is not fit for another job.
   *
   * @returns true once the new worker runs alone; false when the process is
   *   not fit for another job, cannot be checked (no `/proc`) or died
   */
  async recycle(): Promise<boolean> {
    if (this.#dead || this.#slots.size > 0) return false;
    const { promise, resolve } = Promise.withResolvers<boolean>();
    this.#recycled = resolve;
    this.#workerReady = false;
    this.#sparesAsked = 0;
    this.send({ c: "next" });
    if (!(await promise)) return false;
    // The old worker's thread exits shortly after its terminate.
    for (let i = 0; i < RECYCLE_CHECKS; i++) {
      // Connected, so started: its pid is known.
      const threads = await this.#spec.threads.count(this.pid!);
      if (threads === this.#expectThreads) return !this.#dead;
      if (threads === undefined || this.#dead) return false;
      await new Promise((r) => setTimeout(r, RECYCLE_CHECK_MS));
    }
    return false;
  }

  /** Spare workers it holds ready, as last reported. */
  get spares(): number {
    return this.#spares;
  }

  /**
   * Asks an idle process to hold `n` spare workers: fresh workers of its
   * key readied ahead for its next jobs, each of which still serves one job
   * (more are started one at a time; past `n`, ready ones are stopped).
   *
   * @param n spares wanted
   */
  spare(n: number): void {
    if (this.#dead || this.#slots.size > 0 || !this.#workerReady || n === this.#sparesAsked) return;
    if (n > 0 && this.#sparesAsked === 0 && this.#spares === 0) {
      // A sample taken before its worker was up, or in the sampling period
      // since, may not show that worker yet: no base then, and no measure.
      this.#spareBase = Date.now() - this.#readyAt >= SAMPLED_MS ? this.#rss : undefined;
    }
    this.#sparesAsked = n;
    this.#sparesAskedAt = Date.now();
    this.send({ c: "spare", n });
  }

  /**
   * What each of its spares costs, as its resident set shows
   * ({@linkcode perSpareBytes}), while it holds some and serves no job;
   * undefined without a base to measure from, or until a sampling period
   * has passed since its spares last changed.
   */
  get spareBytes(): number | undefined {
    if (this.#spares === 0 || this.#spareBase === undefined || this.#rss === undefined) {
      return undefined;
    }
    if (this.#slots.size > 0 || this.#recycled || Date.now() - this.#sparesAt < SAMPLED_MS) {
      return undefined;
    }
    return perSpareBytes(this.#rss, this.#spareBase, this.#spares);
  }

  /**
   * Whether {@linkcode spareBytes} is expected soon: spares were asked of it
   * lately, with a base to measure from, and it has no measure yet.
   */
  get spareMeasuring(): boolean {
    return this.#spareBase !== undefined && this.#sparesAsked > 0 &&
      Date.now() - this.#sparesAskedAt < SPARE_MEASURE_WINDOW_MS && this.spareBytes === undefined;
  }

  /** Stops readying more spares than it holds now, if it still readies some. */
  holdSpares(): void {
    if (this.#sparesAsked > this.#spares) this.spare(this.#spares);
  }

  #crashAll(reason: string, cap?: string): void {
    const slots = [...this.#slots.values()];
    this.#slots.clear();
    for (const s of slots) s.handlers.crash(reason, cap);
  }

  /**
   * Ends every job attached with a reason the runtime names, then kills the process.
   *
   * @param reason the jobs' error message
   * @param cap the limit it hit, if any
   */
  fail(reason: string, cap?: string): void {
    this.#crashAll(reason, cap);
    this.kill();
  }

  /** SIGKILLs the process: its worker, threads and memory go with it. */
  kill(): void {
    this.#recycled?.(false);
    this.#recycled = undefined;
    this.#dead = true;
    this.#control.close();
    this.process.kill();
  }
}
