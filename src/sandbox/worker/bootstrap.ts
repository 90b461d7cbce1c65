/**
 * The worker side of the sandbox. A job's worker entry module imports this
 * module first, so {@linkcode lockdown} runs before any agent code, then
 * imports the agent and hands it to {@linkcode serveAgent}.
 *
 * Everything here is convenience for honest agents: the runtime re-checks
 * every call, and Deno's permissions confine whatever the agent does
 * directly.
 *
 * @module
 */
import type {
  AgentContext,
  AgentDefinition,
  AgentFs,
  DelegateOptions,
  ProgressBody,
} from "../../agent.ts";
import { LeaseError } from "../../agent.ts";
import type { CallOp, HostMessage } from "./wire.ts";
import {
  BEAT_INTERVAL_MS,
  EVENT_BATCH,
  EVENT_WINDOW,
  EVENT_WINDOW_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_RESULT_BYTES,
} from "./limits.ts";
import { WARM_SLOT } from "./slot.ts";
import { makeModelClient, SlotCredentials } from "./model_client.ts";
import { traceparentOf, withTraceparent } from "./trace_context.ts";

export { routeFetchThrough } from "./egress_fetch.ts";
import { upstreamBudget } from "./egress_fetch.ts";

/**
 * Replaces the channels a worker could use to reach other workers or keep
 * state outside its lease with stubs that throw `NotCapable`. Deno
 * permissions do not cover these (measured on Deno 2.9.6): `BroadcastChannel`
 * crosses workers of one process, `caches` persists to disk and a worker may
 * spawn nested workers. `node:worker_threads` exports a subclass of the
 * global `BroadcastChannel` that replacing the global does not reach (it
 * still crossed workers of one process, with no permissions, measured), so
 * the method every channel sends with is refused on the class itself.
 */
function lockdown(): void {
  const g = globalThis as Record<string, unknown>;
  const refuse = (name: string) =>
    function refused(): never {
      throw new Deno.errors.NotCapable(`${name} is not available to sandboxed agents`);
    };
  const channel = (g.BroadcastChannel as { prototype: object } | undefined)?.prototype;
  if (channel) {
    Object.defineProperty(channel, "postMessage", {
      value: refuse("BroadcastChannel"),
      configurable: false,
      writable: false,
    });
  }
  for (const name of ["BroadcastChannel", "Worker", "SharedWorker", "CacheStorage", "Cache"]) {
    Object.defineProperty(g, name, { value: refuse(name), configurable: false, writable: false });
  }
  Object.defineProperty(g, "caches", { get: refuse("caches"), configurable: false });
}

/**
 * Makes the two ways an agent can end its own worker say so first, so its
 * job ends at once with a truthful error instead of waiting for lost beats:
 * `self.close()`, and `Deno.exit()` (which in a worker ends only the worker
 * in Deno 2.9.6; `node:process`'s `exit` calls it too, measured).
 */
function reportExits(): void {
  const g = globalThis as unknown as { close(): void; postMessage(msg: unknown): void };
  const post = g.postMessage.bind(g);
  const close = g.close.bind(g);
  const exit = Deno.exit.bind(Deno);
  const pin = (target: object, name: string, value: unknown) =>
    Object.defineProperty(target, name, { value, configurable: false, writable: false });
  pin(g, "close", function close_(): void {
    flushEvents();
    post({ t: "exit", via: "close" });
    close();
  });
  pin(Deno, "exit", function exit_(code?: number): never {
    flushEvents();
    post({ t: "exit", via: "exit" });
    return exit(code);
  });
}

lockdown();
reportExits();

/**
 * A timer that fires once after `ms`, taken before any agent code runs (an
 * agent that replaces `AbortSignal.timeout` cannot stop the beats). Not the
 * global `setTimeout`/`setInterval`: in Deno 2.9.6 their first use in a
 * worker loads the Node-compatible timers (~5 ms of CPU in every fresh
 * worker, measured), while `AbortSignal.timeout` runs on the web timers
 * every worker already has.
 */
const timeoutSignal = AbortSignal.timeout.bind(AbortSignal);

/** The interval the worker beats at (ms); 0 until it beats. */
let beatMs = 0;
/** Bumped when the interval changes: the beats armed at the old one stop. */
let beatRound = 0;

/**
 * Beats every `ms` while the worker's event loop is free: a blocked loop
 * runs no timer, so the beats stop and the runtime notices. The first
 * `start` the worker gets arms them: the sandbox process's warm-up before
 * the worker is ready, so a job on a ready worker finds them beating and
 * posts no beat of its own; or the first job, where nothing warmed the
 * worker up (then it beats at once). A job whose interval differs re-arms
 * them, with a beat at once.
 *
 * @param ms the interval
 * @param now whether to beat at once
 */
function beatEvery(ms: number, now: boolean): void {
  if (ms === beatMs) return;
  beatMs = ms;
  const round = ++beatRound;
  const tick = () => {
    if (round !== beatRound) return;
    post({ t: "beat" });
    timeoutSignal(ms).onabort = tick;
  };
  if (now) post({ t: "beat" });
  timeoutSignal(ms).onabort = tick;
}

/** The worker's global scope, as far as this module uses it. */
const scope = globalThis as unknown as {
  postMessage(msg: unknown): void;
  onmessage: ((e: MessageEvent<HostMessage | string>) => void) | null;
};
/**
 * Messages that arrived before {@linkcode serveAgent} took over. The host
 * may post a job's `start` as soon as the worker exists, and an agent
 * module that awaits at its top level (loading a model, reading a config)
 * lets the event loop run before `serveAgent` installs its handler: a
 * message dispatched to a worker with no handler is dropped, and the job
 * then waited for beats that never came. This module evaluates before the
 * agent's, so it takes them first.
 */
let beforeServe: MessageEvent<HostMessage | string>[] | undefined = [];
scope.onmessage = (e) => beforeServe?.push(e);

/** Outboxes holding a batch of events not yet posted. */
const batching = new Set<Outbox>();

/** Posts every batch of events waiting, so nothing posted after overtakes them. */
function flushEvents(): void {
  if (batching.size === 0) return;
  for (const outbox of batching) outbox.flush();
  batching.clear();
}

/**
 * Microtask turns without a new event before a burst counts as over. The
 * agent's own `await` of an emit takes a turn, so a burst of awaited emits
 * never looks idle while it lasts.
 */
const IDLE_TURNS = 2;

/**
 * Whether the agent is in a burst of events: the first event of a burst is
 * posted at once (so an agent that then blocks its event loop has still
 * said it), the ones after it are batched until the agent stops emitting for
 * {@linkcode IDLE_TURNS} microtask turns, a batch is full, the credit runs out
 * or another message is posted. Watching turns needs no timer: an agent
 * that returns to the event loop ends its burst before it does.
 */
let burst = false;
/** Events emitted so far, and as the burst watcher last saw them. */
let emitted = 0;
let seen = 0;
let idle = 0;

/** Runs once per microtask turn while a burst lasts; flushes once the agent stops emitting. */
function watchBurst(): void {
  if (emitted !== seen) {
    seen = emitted;
    idle = 0;
  } else if (++idle >= IDLE_TURNS) {
    burst = false;
    flushEvents();
    return;
  }
  queueMicrotask(watchBurst);
}

/** Posts a message that is not an event, after the events emitted before it. */
const post = (msg: unknown) => {
  flushEvents();
  scope.postMessage(msg);
};

/**
 * Events an agent may queue without awaiting them. Past this, emitting
 * throws: a runaway emitter ends its own job instead of exhausting memory.
 */
const MAX_QUEUED_EVENTS = 10_000;

/**
 * An event waiting for credit (its item's JSON text), or another
 * credit-counted message (a result chunk); `size` is what it takes of the
 * byte window.
 */
type Queued = { item: string; size: number; done: () => void } | {
  msg: unknown;
  size: number;
  done: () => void;
};

/**
 * An event as it goes out: the JSON text of `[kind, body]`, taken when the
 * agent emits it, so it carries the body as it was then however the agent
 * changes the object afterwards (events after the first of a burst are
 * posted later, together), and what it takes of
 * {@linkcode EVENT_WINDOW_BYTES}: its kind and its body's JSON, as the
 * runtime counts it. A body JSON has no text for (`undefined`) goes as
 * `null`, which the runtime refuses, as it refused such a body before.
 *
 * @throws {TypeError} when the body cannot be serialized (a cycle, a BigInt)
 */
function eventItem(kind: string, body: Record<string, unknown>): { item: string; size: number } {
  const json = JSON.stringify(body) ?? "null";
  return { item: itemPrefix(kind) + json + "]", size: windowSize(kind.length + json.length) };
}

/** The last kind emitted, and `["kind",` for it: an agent emits runs of one kind. */
let lastKind: string | undefined;
let lastPrefix = "";

/**
 * `["kind",`, serialized once per run of a kind. A fresh worker runs its
 * first thousand events or so before V8 optimizes this path, so each
 * operation per event saved here counts (measured: plain concatenation and
 * this cache cost less there than a template per event joined per batch).
 */
function itemPrefix(kind: string): string {
  if (kind !== lastKind) {
    lastKind = kind;
    lastPrefix = "[" + JSON.stringify(kind) + ",";
  }
  return lastPrefix;
}

/** The JSON text of an `events` message carrying `items` (each `[kind, body]`'s JSON, comma-separated). */
function eventsText(j: number, items: string): string {
  return '{"t":"events","j":' + j + ',"items":[' + items + "]}";
}

/**
 * What a message of `size` takes of the byte window: anything larger than
 * a message may be is sent as if it were that large, so it goes out (and is
 * refused by its cap) instead of waiting for credit the window never holds.
 */
function windowSize(size: number): number {
  return Math.min(size, MAX_MESSAGE_BYTES);
}

/**
 * Sends one job's events within the credit the host grants it, in events
 * and in bytes, queueing the rest. Events after the first of a burst go out
 * together in `events` messages of at most {@linkcode EVENT_BATCH} (see
 * {@linkcode watchBurst}). Every `events` message is JSON text built from
 * the events' own JSON, taken at emit (see {@linkcode eventItem}): it crosses
 * `postMessage` as one string instead of a graph of objects cloned at post,
 * and its reader (the sandbox process, or the runtime for an in-process
 * worker) parses it as it parses any text a worker posts.
 */
class Outbox {
  readonly j: number;
  #credit = EVENT_WINDOW;
  #bytes = EVENT_WINDOW_BYTES;
  #queue: Queued[] = [];
  /** Events batched: their `[kind, body]` JSON texts, comma-separated, and how many. */
  #batch = "";
  #batched = 0;

  constructor(j: number) {
    this.j = j;
  }

  send(kind: string, body: Record<string, unknown>): Promise<void> {
    let event: { item: string; size: number };
    try {
      event = eventItem(kind, body);
    } catch (err) {
      return Promise.reject(err);
    }
    const { item, size } = event;
    if (this.#queue.length === 0 && this.#fits(size)) {
      this.#take(size);
      this.#add(item);
      return Promise.resolve();
    }
    return this.#wait({ item, size, done: () => {} });
  }

  /**
   * Sends any other credit-counted message (result chunks), after the events before it.
   *
   * @param size what it takes of the byte window (a chunk's data length)
   */
  post(msg: unknown, size: number): Promise<void> {
    if (this.#queue.length === 0 && this.#fits(size)) {
      this.#take(size);
      post(msg);
      return Promise.resolve();
    }
    return this.#wait({ msg, size, done: () => {} });
  }

  #fits(size: number): boolean {
    return this.#credit > 0 && this.#bytes >= size;
  }

  #take(size: number): void {
    this.#credit--;
    this.#bytes -= size;
  }

  #wait(entry: Queued): Promise<void> {
    if (this.#queue.length >= MAX_QUEUED_EVENTS) {
      throw new RangeError(
        `agent queued more than ${MAX_QUEUED_EVENTS} events without awaiting them; await ctx emit calls`,
      );
    }
    // Out of byte credit with events still batched here: they go now, or
    // nothing would be committed to give the credit back.
    this.flush();
    batching.delete(this);
    return new Promise((done) => {
      entry.done = done;
      this.#queue.push(entry);
    });
  }

  #add(item: string): void {
    emitted++;
    if (!burst) {
      burst = true;
      seen = emitted;
      idle = 0;
      queueMicrotask(watchBurst);
      post(eventsText(this.j, item));
      return;
    }
    this.#batch = this.#batched++ === 0 ? item : this.#batch + "," + item;
    if (this.#batched >= EVENT_BATCH || this.#credit === 0) {
      this.flush();
      batching.delete(this);
    } else if (this.#batched === 1) batching.add(this);
  }

  /** Posts the batch of events waiting, if any. */
  flush(): void {
    if (this.#batched === 0) return;
    const items = this.#batch;
    this.#batch = "";
    this.#batched = 0;
    scope.postMessage(eventsText(this.j, items));
  }

  grant(n: number, bytes: number): void {
    this.#credit += n;
    this.#bytes += bytes;
    while (this.#queue.length > 0 && this.#fits(this.#queue[0].size)) {
      const next = this.#queue.shift()!;
      this.#take(next.size);
      if ("item" in next) this.#add(next.item);
      else post(next.msg);
      next.done();
    }
    // Still waiting: what this grant let out goes now, to be committed and give credit back.
    if (this.#queue.length > 0) {
      this.flush();
      batching.delete(this);
    }
  }

  /** Whether nothing waits for credit: everything sent is posted or batched. */
  get idle(): boolean {
    return this.#queue.length === 0;
  }

  /** Settles once everything queued has been handed to the host. */
  drained(): Promise<void> {
    if (this.#queue.length === 0) {
      flushEvents();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const last = this.#queue[this.#queue.length - 1];
      const done = last.done;
      last.done = () => {
        done();
        flushEvents();
        resolve();
      };
    });
  }
}

/** One job's requests to the runtime, matched to replies by id. */
class Calls {
  #j: number;
  #next = 0;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(j: number) {
    this.#j = j;
  }

  call(op: CallOp, args: Record<string, unknown>): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      post({ t: "call", j: this.#j, id, op, args });
    });
  }

  settle(msg: Extract<HostMessage, { t: "reply" }>): void {
    const waiter = this.#pending.get(msg.id);
    if (!waiter) return;
    this.#pending.delete(msg.id);
    if (msg.ok) waiter.resolve(msg.value);
    else waiter.reject(new LeaseError(msg.code, msg.message));
  }
}

function errorMessage(
  j: number,
  err: unknown,
): { t: "error"; j: number; name: string; message: string; code?: string } {
  if (err instanceof Error) {
    const raw = (err as unknown as { code?: unknown }).code;
    const code = typeof raw === "string" ? raw : undefined;
    return {
      t: "error",
      j,
      name: err.name,
      message: err.message || err.name,
      ...(code ? { code } : {}),
    };
  }
  return { t: "error", j, name: "Error", message: String(err) };
}

/**
 * The message that carries the agent's return value, or the cap error when
 * it is too large to send inline: refused here, before it is copied to the
 * sandbox process. A result goes as JSON text built around the value's
 * JSON, which the size check serialized already, so it is neither cloned
 * nor serialized again. The runtime holds every result to JSON anyway: what
 * JSON drops (a function-valued property) is dropped here too, where a
 * clone of the object used to fail the job.
 */
function resultMessage(j: number, value: unknown): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    return errorMessage(j, err);
  }
  if (text !== undefined && text.length > MAX_RESULT_BYTES) {
    return {
      t: "error",
      j,
      name: "RangeError",
      message: `agent result is ${text.length} bytes; the inline cap is ${MAX_RESULT_BYTES} ` +
        "bytes (stream larger results with ctx.streamResult())",
      cap: "result",
    };
  }
  return `{"t":"result","j":${j},"value":${text ?? "null"}}`;
}

/** The longest redirect chain `ctx.fetch` follows. */
const MAX_REDIRECTS = 20;

function makeFs(authorize: (ns: string, target: string) => Promise<string>): AgentFs {
  const read = (p: string) => authorize("fs.read", p);
  const write = (p: string) => authorize("fs.write", p);
  return Object.freeze({
    readText: async (p: string) => await Deno.readTextFile(await read(p)),
    readBytes: async (p: string) => await Deno.readFile(await read(p)),
    writeText: async (p: string, text: string) => await Deno.writeTextFile(await write(p), text),
    writeBytes: async (p: string, bytes: Uint8Array) => await Deno.writeFile(await write(p), bytes),
    readDir: async (p: string) => {
      const out = [];
      for await (const e of Deno.readDir(await read(p))) {
        out.push({ name: e.name, isFile: e.isFile, isDirectory: e.isDirectory });
      }
      return out;
    },
    stat: async (p: string) => {
      const s = await Deno.stat(await read(p));
      return {
        size: s.size,
        isFile: s.isFile,
        isDirectory: s.isDirectory,
        mtime: s.mtime?.toISOString() ?? null,
      };
    },
    mkdir: async (p: string) => await Deno.mkdir(await write(p), { recursive: true }),
    remove: async (p: string) => await Deno.remove(await write(p), { recursive: true }),
  });
}

/** Statuses `fetch` follows (Fetch standard "redirect status"); others are returned as they are. */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Headers that describe a request body, dropped when a redirect turns the request into a GET. */
const BODY_HEADERS = ["content-type", "content-encoding", "content-language", "content-location"];

/**
 * `fetch` that asks the runtime before the first request and before every
 * redirect hop. Redirects are followed by hand (so each hop is checked) with
 * the Fetch standard's rules: `redirect: "error"` rejects, `"manual"`
 * returns the redirect, a 303 (or a 301/302 after a POST) becomes a GET
 * without its body, and `Authorization` is not carried to another origin.
 */
function makeFetch(
  authorize: (ns: string, target: string) => Promise<string>,
  traceparent: string,
) {
  return async (input: string | URL, init: RequestInit = {}): Promise<Response> => {
    let url = await authorize("net.fetch", String(input));
    let req: RequestInit = {
      ...init,
      headers: withTraceparent(init.headers, traceparent),
      redirect: "manual",
    };
    for (let hop = 0;; hop++) {
      const res = await fetch(url, req);
      const location = res.headers.get("location");
      if (init.redirect === "manual" || !REDIRECT_STATUSES.has(res.status) || location === null) {
        return res;
      }
      await res.body?.cancel();
      if (init.redirect === "error") {
        throw new TypeError(`fetch: redirected (${res.status}) while redirect mode is "error"`);
      }
      if (hop >= MAX_REDIRECTS) throw new TypeError(`more than ${MAX_REDIRECTS} redirects`);
      const next = await authorize("net.fetch", new URL(location, url).href);
      const method = (req.method ?? "GET").toUpperCase();
      if (
        ((res.status === 301 || res.status === 302) && method === "POST") ||
        (res.status === 303 && method !== "GET" && method !== "HEAD")
      ) {
        const headers = new Headers(req.headers);
        for (const h of BODY_HEADERS) headers.delete(h);
        req = { ...req, method: "GET", body: undefined, headers };
      }
      if (new URL(next).origin !== new URL(url).origin) {
        const headers = new Headers(req.headers);
        headers.delete("authorization");
        req = { ...req, headers };
      }
      url = next;
    }
  };
}

/** Base64 of bytes, in slices so large chunks do not overflow the call stack. */
function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** The agent's streamed result, if it opened one. */
class ResultStream {
  opened = false;
  closed = false;
  /** Set when the agent aborted the stream: its result is incomplete. */
  #aborted: { reason: unknown } | undefined;
  #outbox: Outbox;

  constructor(outbox: Outbox) {
    this.#outbox = outbox;
  }

  open(): WritableStream<string | Uint8Array> {
    if (this.opened) throw new TypeError("streamResult() may be called once per job");
    this.opened = true;
    return new WritableStream<string | Uint8Array>({
      write: (chunk) => {
        if (typeof chunk === "string") {
          return this.#outbox.post({
            t: "chunk",
            j: this.#outbox.j,
            data: chunk,
            encoding: "utf8",
          }, windowSize(chunk.length));
        }
        if (chunk instanceof Uint8Array) {
          const data = toBase64(chunk);
          return this.#outbox.post({
            t: "chunk",
            j: this.#outbox.j,
            data,
            encoding: "base64",
          }, windowSize(data.length));
        }
        throw new TypeError("streamResult() takes strings or Uint8Arrays");
      },
      close: () => this.end(),
      abort: (reason) => {
        this.#aborted = { reason };
      },
    });
  }

  /**
   * Marks the end of the stream (also when the agent returns without closing
   * it). A stream the agent aborted has no end: returning after that fails
   * the job, since the chunks sent so far are not the whole result.
   */
  end(): Promise<void> {
    if (this.#aborted) {
      const { reason } = this.#aborted;
      const why = reason instanceof Error
        ? reason.message
        : reason === undefined
        ? ""
        : String(reason);
      return Promise.reject(
        new Error(`the agent aborted its streamed result${why ? `: ${why}` : ""}`),
      );
    }
    if (!this.opened || this.closed) return Promise.resolve();
    this.closed = true;
    return this.#outbox.post({ t: "chunk_end", j: this.#outbox.j }, 0);
  }
}

function makeContext(
  start: Extract<HostMessage, { t: "start" }>,
  outbox: Outbox,
  calls: Calls,
  signal: AbortSignal,
  stream: ResultStream,
  credentials: SlotCredentials,
): AgentContext {
  const emit = (kind: string, body: Record<string, unknown>) => outbox.send(kind, body);
  const opt = <T>(v: T | undefined, k: string) => (v === undefined ? {} : { [k]: v });
  // Events the agent emitted must reach the runtime before a check that may depend on them (budget).
  const authorize = async (ns: string, target: string) => {
    await outbox.drained();
    return await calls.call("authorize", { ns, target }) as string;
  };
  // One span for the job: ctx.fetch and ctx.model name the same parent.
  let span: string | undefined;
  const traceparent = () => span ??= traceparentOf(start.traceId, start.spanId);
  // Built on first use: most agents never touch them, and every job pays for what is built here.
  let fs: AgentFs | undefined;
  let fetchFn: AgentContext["fetch"] | undefined;
  return Object.freeze(
    {
      signal,
      jobId: start.jobId,
      traceId: start.traceId,
      // `start` is this worker's own structured-clone copy of the message, seen by nothing else.
      lease: Object.freeze(start.lease),
      get credentials() {
        return credentials.list;
      },
      credential: (idOrProfile?: string) => credentials.find(idOrProfile),
      model: (idOrProfile?: string) =>
        makeModelClient({
          credential: () => credentials.find(idOrProfile),
          authorize,
          emit,
          exhausted: (credentialId, message) =>
            calls.call("upstream_budget", { credential_id: credentialId, message }),
          signal,
          traceparent: traceparent(),
        }),
      log: (level, message, attributes) =>
        emit("log", { level, message, ...opt(attributes, "attributes") }),
      thought: (text) => emit("thought", { text }),
      status: (phase, message) => emit("status", { phase, ...opt(message, "message") }),
      progress: (p: ProgressBody) => emit("progress", { ...p }),
      metric: (name, value, unit, dims) =>
        emit("metric", { name, value, ...opt(unit, "unit"), ...opt(dims, "dims") }),
      toolCall: (tool, args, callId) => emit("tool_call", { tool, args, call_id: callId }),
      toolResult: (callId, result) => emit("tool_result", { call_id: callId, result }),
      artifact: (ref) => emit("artifact_ref", { ...ref }),
      emit: (kind, body) => {
        if (!/^x-vendor\./.test(kind)) {
          return Promise.reject(
            new TypeError(`emit: kind must look like x-vendor.<name>, got ${kind}`),
          );
        }
        return emit(kind, body);
      },
      get fs() {
        return fs ??= makeFs(authorize);
      },
      get fetch() {
        return fetchFn ??= makeFetch(authorize, traceparent());
      },
      input: () => nextInput(calls, signal),
      inputs: () => inputsOf(calls, signal),
      tool: async (name: string, args?: unknown) => {
        await outbox.drained();
        return await calls.call("tool", { name, args: args ?? null });
      },
      useModel: async (model: string) => void await authorize("model.use", model),
      authorize: async (ns: string, target: string) => void await authorize(ns, target),
      streamResult: () => stream.open(),
      delegate: async (agent: string, input: unknown, options: DelegateOptions = {}) => {
        await outbox.drained();
        return await calls.call("delegate", {
          agent,
          input: input ?? null,
          lease: options.lease ?? {},
          ...(options.leaseConstraints ? { lease_constraints: options.leaseConstraints } : {}),
        });
      },
    } satisfies AgentContext,
  );
}

/**
 * The job's next input. The runtime holds the queue; a read waits there
 * until an input arrives, the input is ended (undefined), or the job stops.
 */
function nextInput(calls: Calls, signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.reject(signal.reason);
  const { promise, reject } = Promise.withResolvers<never>();
  const onAbort = () => reject(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  return Promise.race([calls.call("input", {}), promise]).finally(() =>
    signal.removeEventListener("abort", onAbort)
  );
}

/** Every input until the input is ended; stops quietly when the job is cancelled. */
async function* inputsOf(calls: Calls, signal: AbortSignal): AsyncGenerator<unknown> {
  while (!signal.aborted) {
    let next: unknown;
    try {
      next = await nextInput(calls, signal);
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }
    if (next === undefined) return;
    yield next;
  }
}

/** What a worker holds for one job it runs. */
interface JobSlot {
  outbox: Outbox;
  calls: Calls;
  abort: AbortController;
  credentials: SlotCredentials;
}

/**
 * Runs the bootstrap's per-job code once on a dummy job before the worker
 * reports ready, so that the first real job does not pay for it: V8
 * compiles functions on first call, and Deno sets up a worker's timers on
 * first use (~7 ms of a fresh worker's first job together with the first
 * message received, measured on Deno 2.9.6). No agent code runs and
 * nothing reaches the host: the dummy's context is built and dropped, its
 * slot ({@linkcode WARM_SLOT}, which no job has) is never registered, its
 * timer fires with nothing listening, and its message is handed to the
 * handler directly. A sandbox process then drives one dummy job through
 * the worker's own port (see `run`), which warms message receiving; the
 * in-process launcher does not, and its first job pays for that.
 *
 * The dummy's message once went through a `MessageChannel` of its own and
 * its signal was aborted: ~2 ms of CPU in every fresh worker (a port's first
 * use, and an abort's), for paths a sandbox process's dummy job warms again
 * or a job on the happy path never takes (measured, `bench/worker_ready.ts`).
 *
 * @param handle the worker's message handler, given a message about no job
 */
function warmUp(handle: (e: MessageEvent<HostMessage | string>) => void): void {
  // Its timer fires once, with nothing listening.
  timeoutSignal(BEAT_INTERVAL_MS);
  const outbox = new Outbox(WARM_SLOT);
  makeContext(
    { t: "start", j: WARM_SLOT, jobId: "", traceId: "", input: null, lease: {}, beatMs: 0 },
    outbox,
    new Calls(WARM_SLOT),
    new AbortController().signal,
    new ResultStream(outbox),
    new SlotCredentials(),
  );
  resultMessage(WARM_SLOT, null);
  errorMessage(WARM_SLOT, new Error("warm-up"));
  handle({ data: { t: "credit", j: WARM_SLOT, n: 0, b: 0 } } as MessageEvent<HostMessage>);
}

/**
 * Serves one agent in this worker: answers `describe`, runs a job on each
 * `start` (one after another, or several at once for an agent with
 * `concurrency`), each with its own `ctx`, outbox, calls and signal; aborts a
 * job on `abort`; beats while its event loop is free; and reports each
 * job's outcome.
 *
 * @param agent the agent module's default export
 */
export function serveAgent(agent: AgentDefinition): void {
  const jobs = new Map<number, JobSlot>();
  /** Credentials sent just before their job's `start`. */
  const early = new Map<number, Extract<HostMessage, { t: "credentials" }>["credentials"]>();
  const run = async (start: Extract<HostMessage, { t: "start" }>) => {
    const { j } = start;
    const slot: JobSlot = {
      outbox: new Outbox(j),
      calls: new Calls(j),
      abort: new AbortController(),
      credentials: new SlotCredentials(),
    };
    const sent = early.get(j);
    if (sent) {
      slot.credentials.set(sent);
      early.delete(j);
    }
    const stream = new ResultStream(slot.outbox);
    jobs.set(j, slot);
    const warm = j === WARM_SLOT;
    // A blocked event loop stops these beats; the runtime notices and kills the jobs.
    beatEvery(start.beatMs > 0 ? start.beatMs : BEAT_INTERVAL_MS, !warm);
    try {
      const ctx = makeContext(
        start,
        slot.outbox,
        slot.calls,
        slot.abort.signal,
        stream,
        slot.credentials,
      );
      // The warm-up's dummy job runs this whole path but the agent: it returns nothing.
      const value = warm ? await null : await agent.run(start.input, ctx);
      // A turn each only when there is something to wait for: `post` sends
      // the events batched before the result, and most jobs stream nothing.
      if (stream.opened) await stream.end();
      if (!slot.outbox.idle) await slot.outbox.drained();
      post(resultMessage(j, value));
    } catch (err) {
      await slot.outbox.drained();
      post(errorMessage(j, err));
    } finally {
      // Whatever the agent kept of ctx sees no credential once its job is over.
      slot.credentials.set([]);
      jobs.delete(j);
    }
  };
  // The egress proxy saw an upstream refuse a credential for budget: tell the job that holds it.
  upstreamBudget.report = (credentialId, status) => {
    for (const slot of jobs.values()) {
      if (!slot.credentials.list.some((c) => c.id === credentialId)) continue;
      slot.calls.call("upstream_budget", {
        credential_id: credentialId,
        message: `the upstream refused it for budget (HTTP ${status})`,
      }).catch(() => {});
    }
  };
  const handle = (e: MessageEvent<HostMessage | string>) => {
    // A sandbox process posts text (cheaper to pass than an object); the in-process launcher, objects.
    const msg: HostMessage = typeof e.data === "string" ? JSON.parse(e.data) : e.data;
    if (msg.t === "describe") {
      post({
        t: "described",
        name: String(agent?.name),
        version: String(agent?.version),
        ...(typeof agent?.description === "string" ? { description: agent.description } : {}),
        ...(agent?.reuse !== undefined ? { reuse: agent.reuse } : {}),
        ...(agent?.concurrency !== undefined ? { concurrency: agent.concurrency } : {}),
      });
    } else if (msg.t === "start") {
      if (!jobs.has(msg.j)) run(msg);
    } else if (msg.t === "credit") {
      jobs.get(msg.j)?.outbox.grant(msg.n, msg.b);
    } else if (msg.t === "reply") {
      jobs.get(msg.j)?.calls.settle(msg);
    } else if (msg.t === "credentials") {
      const slot = jobs.get(msg.j);
      if (slot) slot.credentials.set(msg.credentials);
      else if (msg.credentials.length > 0) early.set(msg.j, msg.credentials);
      else early.delete(msg.j);
    } else if (msg.t === "abort") {
      jobs.get(msg.j)?.abort.abort(new DOMException(msg.reason, "AbortError"));
    }
  };
  scope.onmessage = handle;
  const arrived = beforeServe ?? [];
  beforeServe = undefined;
  for (const e of arrived) handle(e);
  warmUp(handle);
  post({ t: "ready" });
}
