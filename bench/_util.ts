/**
 * Shared pieces of the benchmarks: a lean WebSocket ARCP client that counts
 * rather than keeps what it receives (so the client does not dominate a
 * throughput figure), bench servers with many principals, percentiles,
 * machine facts and the results table.
 *
 * Benchmarks report figures; they never assert timings.
 *
 * @module
 */
import {
  type ChildServer,
  ROOT,
  spawnServe,
  startServer,
  type TestServer,
  TOKENS,
} from "../testing/server.ts";
import type { RuntimeOptions } from "../mod.ts";
import type { Env } from "../testing/ws_client.ts";
import { workerEntryUrl } from "../src/sandbox/worker/entry.ts";
import { readPosted } from "../src/sandbox/worker/posted.ts";

export { ROOT };
export { startChildServer } from "../testing/server.ts";

/** An envelope as received (the test harness's raw shape). */
export type Envelope = Env;

/** A lease request: namespace → glob patterns. */
export type LeaseRequest = Record<string, string[]>;

/** Number of extra principals every bench server knows (`p0` … `p63`). */
export const EXTRA_PRINCIPALS = 64;

/**
 * The bearer token of bench principal `p<i>`.
 *
 * @param i principal index, 0 ≤ i < {@linkcode EXTRA_PRINCIPALS}
 * @returns the token
 */
export function principalToken(i: number): string {
  return `p${i}-token`;
}

/** Tokens of bench servers: the test tokens plus `p<i>-token` → `p<i>`. */
export const BENCH_TOKENS: Record<string, string> = {
  ...TOKENS,
  ...Object.fromEntries(
    Array.from({ length: EXTRA_PRINCIPALS }, (_, i) => [principalToken(i), `p${i}`]),
  ),
};

/** A runtime running as `arcp serve` in a child process. */
export type ChildServerLike = ChildServer;

/**
 * The checkout whose `arcp serve` a figure that opts in runs as its child
 * server: `ARCP_BENCH_SERVER_ROOT` when set (to measure a baseline checkout
 * with this checkout's bench and client), else this one.
 */
export const SERVER_ROOT: string = Deno.env.get("ARCP_BENCH_SERVER_ROOT") ?? ROOT;

/**
 * Starts `arcp serve` in a child process on a KV file in a fresh temp dir,
 * knowing {@linkcode BENCH_TOKENS}, so a figure's load generator does not
 * share the runtime's event loop. Stopping it removes the temp dir.
 *
 * @param extra more `serve` flags (`--agents`, caps, …)
 * @param root the checkout whose CLI runs (default this one; see {@linkcode SERVER_ROOT})
 * @param env extra environment variables for the child (`DENO_V8_FLAGS`, …)
 * @returns the server
 */
export async function spawnBenchServe(
  extra: string[] = [],
  root: string = ROOT,
  env: Record<string, string> = {},
): Promise<ChildServer> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_bench_" });
  const server = await spawnServe(
    [
      "--port",
      "0",
      "--kv",
      `${dir}/arcp.kv`,
      ...Object.entries(BENCH_TOKENS).flatMap(([t, p]) => ["--token", `${t}=${p}`]),
      ...extra,
    ],
    env,
    undefined,
    root,
  );
  return {
    ...server,
    stop: async (signal?: Deno.Signal) => {
      const status = await server.stop(signal);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return status;
    },
  };
}

/**
 * Starts a real runtime on a loopback port with a KV file in a fresh temp
 * dir, knowing {@linkcode BENCH_TOKENS}.
 *
 * @param options runtime overrides (sandbox, agentsDir, …)
 * @returns the server; `close(true)` removes its temp dir
 */
export async function startBenchServer(
  options: Partial<RuntimeOptions> = {},
): Promise<TestServer> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_bench_" });
  return await startServer({ tokens: BENCH_TOKENS, kvPath: `${dir}/arcp.kv`, ...options });
}

/**
 * Removes a bench server's temp dir when the process unloads. For
 * `Deno.bench` modules, which have no hook after their last bench: the
 * server stays up until the process exits and its sandbox hosts exit with it.
 *
 * @param server the server to clean up after
 */
export function removeOnUnload(server: TestServer): void {
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(server.dir, { recursive: true });
    } catch {
      // already gone
    }
  });
}

let nextId = 0;

/**
 * A fresh W3C trace id.
 *
 * @returns 32 lowercase hex chars
 */
export function traceId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** One submitted job, as a {@linkcode BenchClient} tracks it. */
export interface JobRun {
  /** The submit's trace id (every envelope of the job carries it). */
  traceId: string;
  /** Job id, once accepted. */
  jobId?: string;
  /** `performance.now()` when the submit was sent. */
  submittedAt: number;
  /** `performance.now()` when `job.accepted` arrived. */
  acceptedAt?: number;
  /** `performance.now()` when the first `job.event` arrived. */
  firstEventAt?: number;
  /**
   * `performance.now()` when the first `job.event` the agent emitted arrived:
   * the runtime's `running` status comes first, before a job that waits for a
   * sandbox worker has one.
   */
  firstAgentEventAt?: number;
  /** `performance.now()` when the terminal message arrived. */
  endedAt?: number;
  /** `job.event` envelopes received. */
  events: number;
  /**
   * Submits refused before this one as `sandbox_busy` (see
   * {@linkcode BenchClient.run}); `submittedAt` is then the first's.
   */
  refused?: number;
  /** `job.result` or `job.error`. */
  terminal?: Envelope;
  /** Settles with this run once the terminal message arrives. */
  done: Promise<JobRun>;
}

/** Options of {@linkcode BenchClient.connect}. */
export interface ConnectOptions {
  /** Bearer token (default `alice-token`). */
  token?: string;
  /** Features to ask for (default `["progress"]`: ticker events are progress events). */
  features?: string[];
  /** Resume block of the hello. */
  resume?: { session_id: string; resume_token: string; last_event_seq: number };
  /** Called for every envelope received, with its arrival time. */
  onEnvelope?: (env: Envelope, at: number) => void;
}

/**
 * A minimal raw WebSocket ARCP client for benchmarks. It binds a job's
 * envelopes by `trace_id` and counts events instead of storing them.
 */
export class BenchClient {
  /** The socket. */
  readonly ws: WebSocket;
  /** Session id after the welcome. */
  sessionId = "";
  /** Resume token from the latest welcome. */
  resumeToken = "";
  /** Highest `event_seq` received. */
  lastSeq = 0;
  /** Seq-bearing envelopes received. */
  seqEnvelopes = 0;
  /** `performance.now()` when the welcome arrived. */
  welcomedAt = 0;
  #jobs = new Map<string, { run: JobRun; resolve: (r: JobRun) => void }>();
  #welcome: PromiseWithResolvers<Envelope> = Promise.withResolvers();
  #closed: PromiseWithResolvers<void> = Promise.withResolvers();
  #onEnvelope?: (env: Envelope, at: number) => void;
  #pings = new Map<string, (at: number) => void>();

  private constructor(url: string, onEnvelope?: (env: Envelope, at: number) => void) {
    this.ws = new WebSocket(url);
    this.#onEnvelope = onEnvelope;
    this.ws.onmessage = (m) => this.#receive(JSON.parse(String(m.data)) as Envelope);
    this.ws.onerror = () => this.#welcome.reject(new Error("websocket error"));
    this.ws.onclose = () => {
      this.#welcome.reject(new Error("socket closed before the welcome"));
      for (const { run } of this.#jobs.values()) {
        if (!run.terminal) run.terminal = { type: "closed" } as Envelope;
      }
      this.#closed.resolve();
    };
    this.#welcome.promise.catch(() => {});
  }

  /**
   * Opens a socket, says hello and waits for the welcome.
   *
   * @param url `ws://…/arcp`
   * @param options token, features, resume
   * @returns the welcomed client
   * @throws {Error} when the hello is refused
   */
  static async connect(url: string, options: ConnectOptions = {}): Promise<BenchClient> {
    const c = new BenchClient(url, options.onEnvelope);
    await new Promise<void>((resolve, reject) => {
      c.ws.onopen = () => resolve();
      c.ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)));
    });
    c.#send("session.hello", {
      client: { name: "arcp-bench", version: "0" },
      auth: { scheme: "bearer", token: options.token ?? "alice-token" },
      capabilities: { encodings: ["json"], features: options.features ?? ["progress"] },
      ...(options.resume ? { resume: options.resume } : {}),
    });
    const w = await c.#welcome.promise;
    if (w.type !== "session.welcome") {
      c.ws.close();
      throw new Error(`hello refused: ${JSON.stringify(w.payload)}`);
    }
    return c;
  }

  #send(type: string, payload: unknown, extra: Record<string, unknown> = {}): void {
    const env: Record<string, unknown> = { arcp: "1.1", id: `b${nextId++}`, type, payload };
    if (this.sessionId) env.session_id = this.sessionId;
    this.ws.send(JSON.stringify({ ...env, ...extra }));
  }

  #receive(env: Envelope): void {
    const at = performance.now();
    if (env.event_seq !== undefined) {
      this.lastSeq = env.event_seq;
      this.seqEnvelopes++;
    }
    if (env.type === "session.welcome") {
      this.sessionId = env.session_id ?? "";
      this.resumeToken = env.payload.resume_token;
      this.welcomedAt = at;
      this.#welcome.resolve(env);
    } else if (env.type === "session.error" && !this.sessionId) {
      this.#welcome.resolve(env);
    } else if (env.type === "session.pong") {
      this.#pings.get(env.payload?.ping_nonce)?.(at);
    } else if (env.type === "session.ping") {
      this.#send("session.pong", {
        ping_nonce: env.payload.nonce,
        received_at: new Date().toISOString(),
      });
    }
    this.#onEnvelope?.(env, at);
    const entry = env.trace_id ? this.#jobs.get(env.trace_id) : undefined;
    if (!entry) return;
    const run = entry.run;
    if (env.type === "job.accepted") {
      run.jobId = env.job_id;
      run.acceptedAt = at;
    } else if (env.type === "job.event") {
      run.events++;
      run.firstEventAt ??= at;
      if (env.payload?.kind !== "status") run.firstAgentEventAt ??= at;
    } else if (env.type === "job.result" || env.type === "job.error") {
      if (env.payload?.details?.refused) return;
      run.jobId ??= env.job_id;
      run.endedAt = at;
      run.terminal = env;
      this.#jobs.delete(run.traceId);
      entry.resolve(run);
    }
  }

  /**
   * Submits a job without waiting.
   *
   * @param agent `name` or `name@version`
   * @param input the agent's input
   * @param lease lease request, if any
   * @returns the run; `done` settles on the terminal message
   */
  submit(agent: string, input: unknown, lease?: LeaseRequest): JobRun {
    const trace = traceId();
    const { promise, resolve } = Promise.withResolvers<JobRun>();
    const run: JobRun = { traceId: trace, submittedAt: 0, events: 0, done: promise };
    this.#jobs.set(trace, { run, resolve });
    run.submittedAt = performance.now();
    this.#send("job.submit", { agent, input, ...(lease ? { lease_request: lease } : {}) }, {
      trace_id: trace,
    });
    return run;
  }

  /**
   * Submits a job and waits for its terminal message. A job the sandbox
   * refuses as at capacity (the retryable `sandbox_busy`, at submit or
   * while it waited for a worker) is submitted again 50 ms later, as a
   * client should: many jobs at once may outrun the sandbox processes ready.
   *
   * @param agent agent reference
   * @param input the agent's input
   * @param lease lease request, if any
   * @returns the finished run, timed from the first submit
   * @throws {Error} when the job did not succeed
   */
  async run(agent: string, input: unknown, lease?: LeaseRequest): Promise<JobRun> {
    let firstAt: number | undefined;
    for (let refused = 0;; refused++) {
      const run = await this.submit(agent, input, lease).done;
      firstAt ??= run.submittedAt;
      if (!sandboxBusy(run)) {
        run.submittedAt = firstAt;
        if (refused > 0) run.refused = refused;
        return expectSuccess(run);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Sends a `session.ping` and waits for its pong: a round trip through the
   * session's control path.
   *
   * @returns the round trip (ms)
   */
  async ping(): Promise<number> {
    const nonce = crypto.randomUUID();
    const { promise, resolve } = Promise.withResolvers<number>();
    this.#pings.set(nonce, resolve);
    const sent = performance.now();
    this.#send("session.ping", { nonce, sent_at: new Date().toISOString() });
    try {
      return (await promise) - sent;
    } finally {
      this.#pings.delete(nonce);
    }
  }

  /**
   * Closes the socket and waits for the close.
   *
   * @returns resolves once closed
   */
  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#closed.promise, new Promise((r) => timer = setTimeout(r, 5000))]);
    // Left pending, the timer would hold a finished bench's process open.
    clearTimeout(timer);
  }
}

/**
 * Sessions spread over 4 principals, as figure 11d's 8-session row opens
 * them (a sandbox process or shared worker per principal, not one for all).
 *
 * @param url the server's WebSocket URL
 * @param count how many sessions
 * @returns the connected clients
 */
export function connectSpread(url: string, count: number): Promise<BenchClient[]> {
  return Promise.all(
    Array.from(
      { length: count },
      (_, i) => BenchClient.connect(url, { token: principalToken(i % 4) }),
    ),
  );
}

/** Whether a run ended because the sandbox was at capacity (retryable: no agent code ran). */
function sandboxBusy(run: JobRun): boolean {
  if (run.terminal?.type !== "job.error") return false;
  const payload = run.terminal.payload as { retryable?: boolean; details?: { cap?: unknown } };
  return payload.retryable === true && payload.details?.cap === "sandbox_busy";
}

/**
 * Checks that a run ended in `job.result`.
 *
 * @param run the finished run
 * @returns the run
 * @throws {Error} naming the error payload otherwise
 */
export function expectSuccess(run: JobRun): JobRun {
  if (run.terminal?.type !== "job.result") {
    throw new Error(`job did not succeed: ${JSON.stringify(run.terminal?.payload ?? run)}`);
  }
  return run;
}

/**
 * Runs `fn` over `items` with at most `limit` at once.
 *
 * @param items inputs
 * @param limit concurrency
 * @param fn the work
 * @returns the results, in input order
 */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** Summary statistics of a sample of durations (ms). */
export interface Stats {
  /** Sample size. */
  n: number;
  /** Mean. */
  mean: number;
  /** Minimum. */
  min: number;
  /** Median. */
  p50: number;
  /** 90th percentile. */
  p90: number;
  /** 99th percentile. */
  p99: number;
  /** Maximum. */
  max: number;
}

/**
 * Nearest-rank percentile of an ascending sample.
 *
 * @param sorted ascending values
 * @param p percentile, 0–100
 * @returns the value
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/**
 * Summarizes a sample.
 *
 * @param samples durations
 * @returns statistics
 */
export function stats(samples: readonly number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length),
    min: s[0] ?? NaN,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s[s.length - 1] ?? NaN,
  };
}

/**
 * Formats a number with a fixed count of significant decimals.
 *
 * @param n the number
 * @param digits decimals (default: 2 below 10, 1 below 100, else 0)
 * @returns the text, with thousands separators
 */
export function fmt(n: number, digits?: number): string {
  if (!Number.isFinite(n)) return String(n);
  const d = digits ?? (Math.abs(n) < 10 ? 2 : Math.abs(n) < 100 ? 1 : 0);
  return n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** The machine a run happened on. */
export interface MachineFacts {
  /** Logical cores. */
  cores: number;
  /** Deno version. */
  deno: string;
  /** V8 version. */
  v8: string;
  /** OS and architecture. */
  os: string;
  /** Total memory, MiB, when readable. */
  memMiB?: number;
  /** CPU model name from `/proc/cpuinfo`, when readable. */
  cpu?: string;
  /** 1, 5 and 15 minute load averages when the run started: how shared the machine was. */
  load?: string;
}

/** A `/proc` file's text through `cat` (see {@linkcode rssKiB} for why), or undefined. */
function procText(path: string): string | undefined {
  try {
    const out = new Deno.Command("cat", { args: [path], stdout: "piped", stderr: "null" })
      .outputSync();
    return out.success ? new TextDecoder().decode(out.stdout) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What machine this is.
 *
 * @returns cores, versions, OS
 */
export function machineFacts(): MachineFacts {
  let memMiB: number | undefined;
  try {
    memMiB = Math.round(Deno.systemMemoryInfo().total / 1024 / 1024);
  } catch {
    // --allow-sys missing: leave it out
  }
  return {
    cores: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    os: `${Deno.build.os} ${Deno.build.arch}`,
    memMiB,
    cpu: procText("/proc/cpuinfo")?.match(/^model name\s*:\s*(.+)$/m)?.[1].trim(),
    load: procText("/proc/loadavg")?.split(" ").slice(0, 3).join(" "),
  };
}

/**
 * Resident set size of a process, from `/proc/<pid>/status`. Read through
 * `cat`: Deno wants `--allow-all` to read `/proc` directly, `--allow-run`
 * suffices this way.
 *
 * @param pid the process
 * @returns VmRSS in KiB
 * @throws {Error} when the field is missing
 */
export async function rssKiB(pid: number): Promise<number> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stderr: "null" })
    .output();
  const status = new TextDecoder().decode(out.stdout);
  const m = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** Clock ticks per second of `/proc/…/stat` times (`getconf CLK_TCK`: 100 on Linux). */
export const CLOCK_TICKS = 100;

/** The name Deno KV's SQLite writer thread runs under. */
export const KV_THREAD = "sw-0";

/**
 * A `/proc/…/stat` file read directly (the caller runs with `-A`: Deno
 * lets a program read other processes' `/proc` entries only then).
 *
 * @param path `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat`
 * @returns the command name and the fields after it (field 3 of stat(5)
 *   onwards), or undefined once the process or thread is gone
 */
export function readProcStat(path: string): { name: string; fields: string[] } | undefined {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
  const close = stat.lastIndexOf(")");
  return {
    name: stat.slice(stat.indexOf("(") + 1, close),
    fields: stat.slice(close + 2).split(" "),
  };
}

/**
 * CPU time of a stat's fields, in ms.
 *
 * @param fields the fields {@linkcode readProcStat} returns
 * @param at 11 for utime + stime (fields 14 and 15 of stat(5)), 13 for the
 *   reaped children's cutime + cstime
 * @returns the two fields' sum in ms
 */
export function statCpuMs(fields: string[], at = 11): number {
  return (Number(fields[at]) + Number(fields[at + 1])) * 1000 / CLOCK_TICKS;
}

/**
 * Polls a runtime's `/healthz` until no job is live.
 *
 * @param http `http://127.0.0.1:PORT`
 * @param timeoutMs give up after this long
 * @returns resolves once `live_jobs` is 0
 * @throws {Error} on timeout
 */
export async function waitIdle(http: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const body = await (await fetch(`${http}/healthz`)).json();
    if (body.live_jobs === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("jobs still live after the timeout");
}

/** One row of the results table. */
export interface ResultRow {
  /** Figure number and name, e.g. `1. echo latency`. */
  figure: string;
  /** What was measured. */
  metric: string;
  /** The value, formatted. */
  value: string;
  /** Unit. */
  unit: string;
  /** How it was measured. */
  notes?: string;
}

/**
 * Renders rows as a Markdown table.
 *
 * @param rows the figures
 * @returns Markdown
 */
export function markdownTable(rows: readonly ResultRow[]): string {
  const esc = (s: string) => s.replaceAll("|", "\\|");
  const lines = [
    "| figure | metric | value | unit | notes |",
    "| --- | --- | ---: | --- | --- |",
    ...rows.map((r) =>
      `| ${esc(r.figure)} | ${esc(r.metric)} | ${esc(r.value)} | ${esc(r.unit)} | ${
        esc(r.notes ?? "")
      } |`
    ),
  ];
  return lines.join("\n");
}

/**
 * Starts a raw permissionless worker from an inline module, sends it one
 * message, waits for the echo and terminates it.
 *
 * @returns milliseconds from `new Worker` to the reply
 */
export async function rawWorkerRoundTrip(): Promise<number> {
  const src = "self.onmessage = (e) => self.postMessage(e.data);";
  const url = `data:application/javascript;base64,${btoa(src)}`;
  const t0 = performance.now();
  const w = new Worker(url, {
    type: "module",
    // deno-lint-ignore no-explicit-any
    deno: { permissions: "none" } as any,
  });
  const { promise, resolve } = Promise.withResolvers<void>();
  w.onmessage = () => resolve();
  w.postMessage("ping");
  try {
    await promise;
    return performance.now() - t0;
  } finally {
    w.terminate();
  }
}

const ECHO_AGENT = new URL("../agents/echo/v2.ts", import.meta.url).href;

/**
 * Starts a permissionless worker from the entry module the runtime builds
 * (lockdown, bootstrap, then the `echo` agent), sends `start` and waits for
 * the agent's result.
 *
 * @returns milliseconds from `new Worker` to the result
 */
export async function agentWorkerRoundTrip(): Promise<number> {
  const t0 = performance.now();
  const w = new Worker(workerEntryUrl(ECHO_AGENT), {
    type: "module",
    // deno-lint-ignore no-explicit-any
    deno: { permissions: "none" } as any,
  });
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  // The worker posts JSON text, as it does to a sandbox process.
  w.onmessage = (e) => {
    const msg = readPosted(e.data).msg as { t?: string; message?: string } | undefined;
    if (msg?.t === "result") resolve();
    else if (msg?.t === "error") reject(new Error(msg.message));
  };
  w.onerror = (e) => {
    e.preventDefault();
    reject(new Error(e.message));
  };
  w.postMessage(JSON.stringify({
    t: "start",
    j: 0,
    jobId: "job_bench",
    traceId: "0".repeat(32),
    input: {},
    lease: {},
  }));
  try {
    await promise;
    return performance.now() - t0;
  } finally {
    w.terminate();
  }
}

/**
 * Starts a bare `deno run` of a one-line module that prints `ready`, with
 * the project's configuration and `--cached-only` as sandbox processes get
 * them, and times spawn → first byte on stdout: the floor under any
 * process-per-job design, whatever the sandbox does after it.
 *
 * @param modulePath a module that writes to stdout at once
 * @returns milliseconds from spawn to its first output
 * @throws {Error} when the process prints nothing
 */
export async function rawProcessStart(modulePath: string): Promise<number> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--cached-only", "--config", `${ROOT}/deno.json`, modulePath],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  try {
    const first = await reader.read();
    if (first.done) throw new Error("the process printed nothing");
    return performance.now() - t0;
  } finally {
    reader.releaseLock();
    await child.stdout.cancel();
    await child.status;
  }
}

/** A process's resident set, as `ps` reports it. */
export interface ProcRss {
  /** Process id. */
  pid: number;
  /** Resident set, KiB. */
  rssKiB: number;
}

/**
 * The `deno` children of a process and their resident sets: for a bench
 * runtime in this process, its sandbox processes (idle pool ones included).
 * `ps` itself, a child too while it runs, is left out by its name.
 *
 * @param ppid the parent (default: this process)
 * @returns one entry per child `deno` process
 */
export async function denoChildren(ppid = Deno.pid): Promise<ProcRss[]> {
  const out = await new Deno.Command("ps", {
    args: ["-o", "pid=,rss=,comm=", "--ppid", String(ppid)],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length === 3 && f[2] === "deno")
    .map(([pid, rss]) => ({ pid: Number(pid), rssKiB: Number(rss) }));
}
