/**
 * The sandbox process: runs one agent worker, under a V8 heap cap, for one
 * job (or, for an agent with `reuse` or `concurrency`, for jobs of one key),
 * beside spares (fresh workers of the same key readied ahead, each for one
 * later job, when the runtime asks for them),
 * and is killed with everything the agent started (threads, timers, memory)
 * when its last job ends. It talks to the runtime over a control socket
 * no worker can reach: the socket's path and a one-time token arrive on
 * stdin, which is read before any worker exists. It refuses worker messages
 * over the size caps before they leave this process; every other check
 * happens in the runtime.
 *
 * @module
 */
import { workerEntryUrl } from "../worker/entry.ts";
import { slotOf, WARM_SLOT } from "../worker/slot.ts";
import { EgressProxy } from "../egress_proxy.ts";
import {
  EVENT_WINDOW,
  EVENT_WINDOW_BYTES,
  MAX_EVENT_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_RESULT_BYTES,
} from "../worker/limits.ts";
import { encodeFrame, frameBytes, FrameReader, frameText, FrameWriter } from "./frames.ts";
import type { HostMessage } from "../worker/wire.ts";
import { readPosted } from "../worker/posted.ts";
import { windowBytes } from "./window_bytes.ts";
import {
  type HostCommand,
  type HostIntro,
  type HostReport,
  MAX_COMMAND_FRAME_BYTES,
  MAX_INTRO_BYTES,
  RSS_REPORT_MS,
  rssDue,
} from "./protocol.ts";

const encoder = new TextEncoder();

/** How a `start` message's text begins, as the runtime writes it (`JSON.stringify`). */
const START = '{"t":"start",';

/** How the frame of a `post` command carrying a `start` begins, as the runtime writes it. */
const POST_START = `{"c":"post","msg":${START}`;

/** Reads the intro line; stdin carries nothing else. */
async function readIntro(): Promise<HostIntro> {
  const buf = new Uint8Array(MAX_INTRO_BYTES);
  let filled = 0;
  while (filled < buf.length) {
    const n = await Deno.stdin.read(buf.subarray(filled));
    if (n === null) break;
    filled += n;
    if (buf.subarray(0, filled).includes(10)) break;
  }
  const line = new TextDecoder().decode(buf.subarray(0, filled)).split("\n")[0];
  return JSON.parse(line) as HostIntro;
}

/** Why a worker message may not leave this process, if it may not. */
function overCap(msg: { t?: unknown }, size: number): { crash: string; cap: string } | undefined {
  if (msg.t === "event" && size > MAX_EVENT_BYTES + 1024) {
    return {
      crash: `agent sent an event of ${size} bytes; the cap is ${MAX_EVENT_BYTES} bytes`,
      cap: "event",
    };
  }
  if (msg.t === "result" && size > MAX_RESULT_BYTES + 64) {
    return {
      crash: `agent result is ${size} bytes; the inline cap is ${MAX_RESULT_BYTES} bytes ` +
        "(stream larger results with ctx.streamResult())",
      cap: "result",
    };
  }
  if (size > MAX_MESSAGE_BYTES) {
    return {
      crash: `agent sent a message of ${size} bytes; the cap is ${MAX_MESSAGE_BYTES} bytes`,
      cap: "message",
    };
  }
  return undefined;
}

/**
 * The text of the frame relaying a worker message. Text that parsed as JSON
 * is one JSON value, so it goes in as it is, without being serialized again.
 *
 * @param posted the message, and its text when it came as JSON text
 * @returns the frame's text
 * @throws {TypeError} when a message that came as an object is not JSON
 */
function frameTextOf(posted: { msg: unknown; text?: string }): string {
  return posted.text === undefined ? JSON.stringify({ m: posted.msg }) : `{"m":${posted.text}}`;
}

/** The process's one worker and the jobs it runs. */
class Relay {
  #out: FrameWriter;
  #worker: Worker | undefined;
  /**
   * Per job slot: events and their bytes relayed minus credits seen. A worker
   * ignoring credits is stopped here too.
   */
  #outstanding = new Map<number, { n: number; b: number }>();
  /** Slots whose job this process already ended; their later messages are dropped. */
  #ended = new Set<number>();
  #dead = false;
  /** What the worker was started with, for the next one. */
  #template: Extract<HostCommand, { c: "launch" }> | undefined;
  /** Set while the worker runs its warm-up job, before it is reported ready. */
  #warming = false;
  #proxy: EgressProxy | undefined;
  /**
   * Spares: fresh workers of the template readied ahead for this key's next
   * jobs, warmed up and never given a job; a `next` hands the oldest one
   * the next job, so a burst of the key's jobs does not wait for (or pay
   * for) worker starts in it. Each still serves one job.
   */
  #spares: Worker[] = [];
  /** The spare warming now: spares start one at a time. */
  #spareStarting: Worker | undefined;
  /** Spares the runtime asked for; a `next` drops it to 0 until it asks again. */
  #sparesWanted = 0;

  constructor(conn: Deno.Conn) {
    this.#out = new FrameWriter(conn);
  }

  report(r: HostReport): void {
    this.#out.write(encodeFrame(r));
  }

  /** Stops the worker and tells the runtime why; the runtime then kills this process. */
  #endWorker(crash: string, cap?: string): void {
    if (this.#dead) return;
    this.#dead = true;
    this.#worker?.terminate();
    this.report(cap ? { crash, cap } : { crash });
  }

  /**
   * Ends one job for breaking the relay's rules; the worker's other jobs go
   * on. A message that names no slot breaks the whole worker.
   */
  #endJob(j: number | undefined, crash: string, cap?: string): void {
    if (j === undefined) return this.#endWorker(crash, cap);
    this.#ended.add(j);
    this.#outstanding.delete(j);
    this.report(cap ? { crash, cap, j } : { crash, j });
  }

  #relay(data: unknown): void {
    if (this.#dead) return;
    const posted = readPosted(data);
    const msg = (posted.msg ?? {}) as { t?: unknown; items?: unknown; j?: unknown };
    if (this.#warming && this.#warmUp(msg)) return;
    const j = slotOf(msg);
    if (j !== undefined && this.#ended.has(j)) return;
    let text: string;
    try {
      text = frameTextOf(posted);
    } catch (err) {
      return this.#endJob(j, `agent posted a message that is not JSON: ${(err as Error).message}`);
    }
    const frame = frameText(text);
    const size = frame.length - 4;
    // A batch too large for one frame is split and each event held to its own cap.
    const split = msg.t === "events" && j !== undefined && size > MAX_EVENT_BYTES + 1024;
    // A message over its own cap is refused by that cap, before it counts toward a flood.
    const refused = split ? undefined : overCap(msg, size);
    if (refused) return this.#endJob(j, refused.crash, refused.cap);
    // A split batch is counted frame by frame as it goes.
    if (
      !split && (msg.t === "event" || msg.t === "chunk" || msg.t === "events") && j !== undefined
    ) {
      const flood = this.#flood(j, msg, text);
      if (flood) return this.#endJob(j, flood);
    }
    if (split) this.#relayEvents(j, msg.items);
    else this.#out.write(frame);
  }

  /**
   * Counts a credit-counted message against its job's window.
   *
   * @param j the job's slot
   * @param msg the message (`event`, `events` or `chunk`)
   * @param text the frame text relaying it
   * @returns why the job is ended, when it has that much more than its window unacknowledged
   */
  #flood(
    j: number,
    msg: { t?: unknown; j?: unknown; items?: unknown },
    text: string,
  ): string | undefined {
    const out = this.#outstanding.get(j) ?? { n: 0, b: 0 };
    out.n += msg.t === "events" && Array.isArray(msg.items) ? msg.items.length : 1;
    out.b += windowBytes(msg, text);
    this.#outstanding.set(j, out);
    if (out.n > 2 * EVENT_WINDOW) {
      return `agent flooded the runtime with more than ${2 * EVENT_WINDOW} unacknowledged events`;
    }
    if (out.b > 2 * EVENT_WINDOW_BYTES) {
      return `agent flooded the runtime with more than ${
        2 * EVENT_WINDOW_BYTES
      } unacknowledged bytes of events`;
    }
    return undefined;
  }

  /**
   * Drives one dummy job through the new worker before the runtime hears it
   * is ready, so that its first real job does not pay for first use: the
   * worker's port, its job path and this relay's (V8 compiles functions on
   * first call; ~1 ms of a fresh worker's first job, measured). When the
   * worker reports ready, it gets a `start` for {@linkcode WARM_SLOT}, a
   * slot no job has; the worker runs its job path for it without calling
   * the agent and arms its beats at the runtime's interval. Whatever the
   * worker posts about that slot stays here; its outcome sends the held
   * `ready` on.
   *
   * @returns whether the message was the warm-up's
   */
  #warmUp(msg: { t?: unknown; j?: unknown }): boolean {
    if (msg.t === "ready") {
      this.#worker!.postMessage(this.#warmStart());
      return true;
    }
    if (msg.j !== WARM_SLOT) return false;
    if (msg.t === "result" || msg.t === "error") {
      this.#warming = false;
      // The relay's own path, with a frame that goes nowhere.
      frameText(frameTextOf({ msg }));
      this.report({ m: { t: "ready" } });
    }
    return true;
  }

  /** The warm-up's dummy `start`. */
  #warmStart(): string {
    return JSON.stringify(
      {
        t: "start",
        j: WARM_SLOT,
        jobId: "",
        traceId: "",
        input: null,
        lease: {},
        beatMs: this.#template!.beatMs,
      } satisfies HostMessage,
    );
  }

  /** Sets the spares wanted: readies more one at a time, or stops the ones past it. */
  #wantSpares(n: number): void {
    this.#sparesWanted = Math.max(0, Math.floor(n));
    let dropped = false;
    while (this.#spares.length > this.#sparesWanted) {
      this.#spares.pop()!.terminate();
      dropped = true;
    }
    if (dropped) this.report({ spares: this.#spares.length });
    this.#startSpare();
  }

  /**
   * Readies the next spare, while fewer than wanted: a fresh worker of the
   * template, warmed up like the first, then silent (its beats dropped, as
   * no job of its own is watched) until a `next` gives it the next job.
   */
  #startSpare(): void {
    if (
      this.#dead || this.#spareStarting || !this.#template ||
      this.#spares.length >= this.#sparesWanted
    ) return;
    const w = this.#create(this.#template);
    if (!w) return;
    this.#spareStarting = w;
    // A spare that fails to start is dropped; so are the rest until the runtime asks again.
    const drop = () => {
      w.terminate();
      this.#sparesWanted = 0;
      if (this.#spareStarting === w) this.#spareStarting = undefined;
      const i = this.#spares.indexOf(w);
      if (i < 0) return;
      this.#spares.splice(i, 1);
      this.report({ spares: this.#spares.length });
    };
    w.onmessage = (e: MessageEvent) => {
      const msg = (readPosted(e.data).msg ?? {}) as { t?: unknown; j?: unknown };
      if (msg.t === "ready") return w.postMessage(this.#warmStart());
      if (msg.j !== WARM_SLOT || (msg.t !== "result" && msg.t !== "error")) return;
      w.onmessage = null;
      this.#spareStarting = undefined;
      this.#spares.push(w);
      this.report({ spares: this.#spares.length });
      this.#startSpare();
    };
    w.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      drop();
    };
    w.onmessageerror = drop;
  }

  /** Worker threads this process holds now: the job's, the spares and the one warming. */
  #workerCount(): number {
    return (this.#worker ? 1 : 0) + this.#spares.length + (this.#spareStarting ? 1 : 0);
  }

  /** Makes a ready spare the process's worker. */
  #adopt(worker: Worker): void {
    this.#worker = worker;
    this.#warming = false;
    this.#wire(worker);
  }

  #wire(worker: Worker): void {
    worker.onmessage = (e: MessageEvent) => this.#relay(e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#endWorker(e.message ?? "uncaught error in agent");
    };
    worker.onmessageerror = () => this.#endWorker("agent sent a message that could not be read");
  }

  /**
   * A batch of events too large for one frame: each event is held to the
   * cap of one event, and they go on in as many frames as they need, in order.
   */
  #relayEvents(j: number, items: unknown): void {
    if (!Array.isArray(items)) return this.#endJob(j, "agent sent a malformed events message");
    let parts: string[] = [];
    let size = 0;
    /** Sends the events gathered, each frame counted against the window; false once it floods. */
    const send = (): boolean => {
      if (parts.length === 0) return true;
      const text = `{"m":{"t":"events","j":${j},"items":[${parts.join(",")}]}}`;
      const flood = this.#flood(j, { t: "events", j, items: parts }, text);
      if (flood) {
        this.#endJob(j, flood);
        return false;
      }
      this.#out.write(frameBytes(encoder.encode(text)));
      parts = [];
      size = 0;
      return true;
    };
    for (const item of items) {
      const part = JSON.stringify(item) ?? "null";
      const bytes = encoder.encode(part).length;
      const refused = overCap({ t: "event" }, bytes);
      if (refused) {
        if (send()) this.#endJob(j, refused.crash, refused.cap);
        return;
      }
      if (size + bytes > MAX_EVENT_BYTES && !send()) return;
      parts.push(part);
      size += bytes + 1;
    }
    send();
  }

  /**
   * Posts a job's `start` to the worker as the runtime wrote it: the worker
   * parses it either way, and this process has nothing to read in it.
   *
   * @param text the message's JSON text
   */
  start(text: string): void {
    if (this.#worker && !this.#dead) this.#worker.postMessage(text);
  }

  handle(cmd: HostCommand): void {
    if (cmd.c === "launch" && !this.#worker) this.#launch(cmd);
    else if (cmd.c === "next" && this.#worker && !this.#dead) this.#next();
    else if (cmd.c === "spare" && this.#worker && !this.#dead) this.#wantSpares(cmd.n);
    else if (cmd.c === "post" && this.#worker && !this.#dead) {
      const msg = cmd.msg;
      if (msg.t === "credentials") this.#proxy?.credentials.set(msg.j, msg.credentials);
      if (msg.t === "credit") {
        const out = this.#outstanding.get(msg.j);
        if (out !== undefined) {
          out.n = Math.max(0, out.n - msg.n);
          out.b = Math.max(0, out.b - msg.b);
        }
      }
      // As text: the worker parses it, which costs less than cloning the object.
      this.#worker.postMessage(JSON.stringify(msg));
    }
  }

  /**
   * Retires the worker whose job ended and starts a fresh one for the next
   * job of this key. Whether a thread of the last job outlived its worker is
   * the runtime's to check: it can see this process's threads, and this
   * process cannot (`/proc` is denied to it).
   */
  #next(): void {
    const old = this.#worker!;
    // Nothing the old worker still had queued may follow the report below:
    // the next job's slots start again at 0.
    old.onmessage = null;
    old.onerror = (e: ErrorEvent) => e.preventDefault();
    old.onmessageerror = null;
    old.terminate();
    this.#worker = undefined;
    this.#outstanding.clear();
    this.#ended.clear();
    this.#proxy?.credentials.clear();
    // No spare starts until the runtime has counted this process's threads
    // against the count reported below.
    this.#sparesWanted = 0;
    const spare = this.#spares.shift();
    if (spare) this.#adopt(spare);
    else this.#launch(this.#template!);
    if (this.#dead) return;
    this.report({ recycled: true, workers: this.#workerCount() });
    if (!spare) return;
    this.report({ spares: this.#spares.length });
    this.report({ m: { t: "ready" } });
  }

  #launch(cmd: Extract<HostCommand, { c: "launch" }>): void {
    this.#template = cmd;
    const worker = this.#create(cmd);
    if (!worker) return;
    this.#worker = worker;
    this.#warming = true;
    this.#wire(worker);
  }

  /** A new worker of the template; undefined (and the process failed) when it cannot start. */
  #create(cmd: Extract<HostCommand, { c: "launch" }>): Worker | undefined {
    try {
      // The proxy lives in this process's main isolate: its traffic and memory are its key's own.
      this.#proxy ??= cmd.egress.length > 0 ? new EgressProxy(cmd.egress) : undefined;
      const proxy = this.#proxy;
      return new Worker(workerEntryUrl(cmd.agentUrl, proxy?.config), {
        type: "module",
        name: "agent",
        deno: {
          permissions: { ...cmd.permissions, net: proxy ? [proxy.address] : false },
          // deno-lint-ignore no-explicit-any
        } as any,
      });
    } catch (err) {
      this.#endWorker((err as Error).message);
      return undefined;
    }
  }
}

/**
 * Connects to the runtime and serves one job until the runtime hangs up.
 *
 * @returns never returns normally: the process exits when the channel ends
 */
async function main(): Promise<never> {
  const intro = await readIntro();
  const conn = await Deno.connect({ transport: "unix", path: intro.path });
  const relay = new Relay(conn);
  relay.report({ token: intro.token });
  let answered = false;
  let sampling = false;
  let reported: number | undefined;
  const sample = () => {
    const rss = Deno.memoryUsage().rss;
    if (!rssDue(rss, reported, intro.ceiling)) return;
    reported = rss;
    relay.report({ rss });
  };
  try {
    await new FrameReader(conn, MAX_COMMAND_FRAME_BYTES).pump((text) => {
      if (answered && text.startsWith(POST_START) && text.endsWith("}")) {
        return relay.start(text.slice(POST_START.length - START.length, -1));
      }
      const cmd = JSON.parse(text) as HostCommand;
      if (!answered) {
        // Whoever holds the socket path without the answer is not the runtime.
        if (cmd.c !== "answer" || cmd.answer !== intro.answer) Deno.exit(2);
        answered = true;
        sample();
        return;
      }
      if (cmd.c === "launch" && !sampling) {
        // Memory can grow only once agent code is loaded, in the worker this
        // command starts; agent code runs on another thread, so it cannot
        // stop this timer.
        sampling = true;
        setInterval(sample, RSS_REPORT_MS);
      }
      relay.handle(cmd);
    });
  } catch {
    // A broken channel ends this process like a closed one.
  }
  // The runtime went away: nothing this job started may outlive it.
  Deno.exit(0);
}

if (import.meta.main) await main();
