/**
 * The sandbox process: runs exactly one job's agent worker, under a V8 heap
 * cap, and is killed with everything the agent started (threads, timers,
 * memory) when the job ends. It talks to the runtime over a control socket
 * no worker can reach: the socket's path and a one-time token arrive on
 * stdin, which is read before any worker exists. It refuses worker messages
 * over the size caps before they leave this process; every other check
 * happens in the runtime.
 *
 * @module
 */
import { workerEntryUrl } from "../worker/entry.ts";
import { EgressProxy } from "../egress_proxy.ts";
import {
  EVENT_WINDOW,
  MAX_EVENT_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_RESULT_BYTES,
} from "../worker/limits.ts";
import { encodeFrame, frameBytes, readFrames } from "./frames.ts";
import {
  type HostCommand,
  type HostIntro,
  type HostReport,
  MAX_COMMAND_FRAME_BYTES,
  MAX_INTRO_BYTES,
  RSS_REPORT_MS,
} from "./protocol.ts";

const encoder = new TextEncoder();

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

/** The one job this process serves. */
class Relay {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #writing: Promise<void> = Promise.resolve();
  #worker: Worker | undefined;
  /** Events relayed minus credits seen: a worker ignoring credits is stopped here too. */
  #outstanding = 0;
  #ended = false;

  constructor(conn: Deno.Conn) {
    this.#writer = conn.writable.getWriter();
  }

  report(r: HostReport): void {
    this.#send(encodeFrame(r));
  }

  #send(bytes: Uint8Array): void {
    this.#writing = this.#writing.then(() => this.#writer.write(bytes)).catch(() => {});
  }

  /** Stops the worker and tells the runtime why; the runtime then kills this process. */
  #end(crash: string, cap?: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#worker?.terminate();
    this.report(cap ? { crash, cap } : { crash });
  }

  #relay(data: unknown): void {
    if (this.#ended) return;
    const msg = (data ?? {}) as { t?: unknown };
    if ((msg.t === "event" || msg.t === "chunk") && ++this.#outstanding > 2 * EVENT_WINDOW) {
      this.#end(
        `agent flooded the runtime with more than ${2 * EVENT_WINDOW} unacknowledged events`,
      );
      return;
    }
    let body: Uint8Array;
    try {
      body = encoder.encode(JSON.stringify({ m: data }));
    } catch (err) {
      this.#end(`agent posted a message that is not JSON: ${(err as Error).message}`);
      return;
    }
    const refused = overCap(msg, body.length);
    if (refused) this.#end(refused.crash, refused.cap);
    else this.#send(frameBytes(body));
  }

  handle(cmd: HostCommand): void {
    if (cmd.c === "launch" && !this.#worker) this.#launch(cmd);
    else if (cmd.c === "post" && this.#worker && !this.#ended) {
      if (cmd.msg.t === "credit") {
        this.#outstanding = Math.max(0, this.#outstanding - cmd.msg.n);
      }
      this.#worker.postMessage(cmd.msg);
    }
  }

  #launch(cmd: Extract<HostCommand, { c: "launch" }>): void {
    let worker: Worker;
    try {
      // The proxy lives in this process's main isolate: its traffic and memory are the job's own.
      const proxy = cmd.egress.length > 0 ? new EgressProxy(cmd.egress) : undefined;
      worker = new Worker(workerEntryUrl(cmd.agentUrl, proxy?.config), {
        type: "module",
        name: cmd.id,
        deno: {
          permissions: { ...cmd.permissions, net: proxy ? [proxy.address] : false },
          // deno-lint-ignore no-explicit-any
        } as any,
      });
    } catch (err) {
      this.#end((err as Error).message);
      return;
    }
    this.#worker = worker;
    worker.onmessage = (e: MessageEvent) => this.#relay(e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#end(e.message ?? "uncaught error in agent");
    };
    worker.onmessageerror = () => this.#end("agent sent a message that could not be read");
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
  try {
    for await (const frame of readFrames(conn.readable, MAX_COMMAND_FRAME_BYTES)) {
      const cmd = frame as HostCommand;
      if (!answered) {
        // Whoever holds the socket path without the answer is not the runtime.
        if (cmd.c !== "answer" || cmd.answer !== intro.answer) Deno.exit(2);
        answered = true;
        // Agent code runs on another thread, so it cannot stop this timer.
        setInterval(() => relay.report({ rss: Deno.memoryUsage().rss }), RSS_REPORT_MS);
      } else relay.handle(cmd);
    }
  } catch {
    // A broken channel ends this process like a closed one.
  }
  // The runtime went away: nothing this job started may outlive it.
  Deno.exit(0);
}

if (import.meta.main) await main();
