/**
 * What agent authors import: {@linkcode defineAgent} and the context an
 * agent's `run` receives. This module has no dependencies, so it is cheap to
 * load inside every sandboxed worker.
 *
 * @example
 * ```ts
 * import { defineAgent } from "./agent.ts";
 *
 * export default defineAgent({
 *   name: "hello",
 *   version: "1.0.0",
 *   async run(input: { who: string }, ctx) {
 *     await ctx.log("info", `greeting ${input.who}`);
 *     return { greeting: `hello ${input.who}` };
 *   },
 * });
 * ```
 *
 * @module
 */

/** Log levels of a `log` event. */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "critical";

/** Fields of a `progress` event. */
export interface ProgressBody {
  /** Units done so far, ≥ 0. */
  current: number;
  /** Units in all, when known; current ≤ total. */
  total?: number;
  /** What a unit is, e.g. `files`. */
  units?: string;
  /** A short human message. */
  message?: string;
}

/** Fields of an `artifact_ref` event. */
export interface ArtifactRef {
  /** Where the artifact is. */
  uri: string;
  /** Its media type. */
  content_type: string;
  /** Its size in bytes. */
  byte_size?: number;
  /** Hex SHA-256 of its bytes. */
  sha256?: string;
}

/** The lease a job runs under: capability namespace → glob patterns. */
export type AgentLease = Readonly<Record<string, readonly string[]>>;

/** Lease-checked file access. Paths are absolute; symlinks are resolved before the check. */
export interface AgentFs {
  /** Reads a UTF-8 file (`fs.read`). */
  readText(path: string): Promise<string>;
  /** Reads a file's bytes (`fs.read`). */
  readBytes(path: string): Promise<Uint8Array>;
  /** Writes a UTF-8 file (`fs.write`). */
  writeText(path: string, text: string): Promise<void>;
  /** Writes bytes (`fs.write`). */
  writeBytes(path: string, bytes: Uint8Array): Promise<void>;
  /** Lists a directory (`fs.read`). */
  readDir(path: string): Promise<Array<{ name: string; isFile: boolean; isDirectory: boolean }>>;
  /** Describes a file (`fs.read`). */
  stat(
    path: string,
  ): Promise<{ size: number; isFile: boolean; isDirectory: boolean; mtime: string | null }>;
  /** Creates a directory and its parents (`fs.write`). */
  mkdir(path: string): Promise<void>;
  /** Removes a file or directory tree (`fs.write`). */
  remove(path: string): Promise<void>;
}

/**
 * What a running agent can do. Every emit method returns a promise that
 * settles once the runtime has taken the event; awaiting it keeps a chatty
 * agent from outrunning the runtime.
 */
export interface AgentContext {
  /** Aborted when the job is cancelled or times out; stop promptly. */
  readonly signal: AbortSignal;
  /** This job's id. */
  readonly jobId: string;
  /** This job's W3C trace id. */
  readonly traceId: string;
  /** The effective lease. */
  readonly lease: AgentLease;
  /** Emits a `log` event. */
  log(level: LogLevel, message: string, attributes?: Record<string, unknown>): Promise<void>;
  /** Emits a `thought` event. */
  thought(text: string): Promise<void>;
  /** Emits a `status` event. */
  status(phase: string, message?: string): Promise<void>;
  /** Emits a `progress` event. */
  progress(progress: ProgressBody): Promise<void>;
  /** Emits a `metric` event. */
  metric(name: string, value: number, unit?: string, dims?: Record<string, unknown>): Promise<void>;
  /** Emits a `tool_call` event. */
  toolCall(tool: string, args: unknown, callId: string): Promise<void>;
  /** Emits a `tool_result` event. */
  toolResult(callId: string, result: unknown): Promise<void>;
  /** Emits an `artifact_ref` event. */
  artifact(ref: ArtifactRef): Promise<void>;
  /** Emits a vendor event; `kind` must look like `x-vendor.<name>`. */
  emit(kind: string, body: Record<string, unknown>): Promise<void>;
  /** Lease-checked file access (`fs.read` / `fs.write`). */
  readonly fs: AgentFs;
  /**
   * Lease-checked `fetch` (`net.fetch`); every redirect hop is checked too.
   * Each request carries the job's W3C `traceparent` (unless `init` sets one).
   */
  fetch(input: string | URL, init?: RequestInit): Promise<Response>;
  /**
   * The next input a client sent to this job (vendor feature
   * `x-arcp-deno.input`), in the order sent; waits for one. Resolves
   * `undefined` once the client ended the input; rejects when the job is
   * cancelled while waiting.
   */
  input(): Promise<unknown>;
  /** Every input, in order, until the client ends the input (or the job is cancelled). */
  inputs(): AsyncIterable<unknown>;
  /**
   * Calls a tool registered with the runtime (`tool.call`). The runtime
   * emits the `tool_call` and `tool_result` events.
   */
  tool(name: string, args?: unknown): Promise<unknown>;
  /** Checks that the lease allows a model (`model.use`) before the agent invokes it. */
  useModel(model: string): Promise<void>;
  /** Checks any namespace and target against the lease, expiry and budget. */
  authorize(namespace: string, target: string): Promise<void>;
  /**
   * Opens the job's streamed result (once per job). Each write becomes a
   * `result_chunk` (strings as `utf8`, bytes as `base64`); closing it, or
   * returning from `run`, ends the result. `run` must then return nothing.
   * Aborting the stream fails the job (`INTERNAL_ERROR`): a truncated result
   * never counts as success.
   */
  streamResult(): WritableStream<string | Uint8Array>;
  /**
   * Starts a child job (`agent.delegate`) under a lease that must be a subset
   * of this job's, and resolves with its result (rejects with its error).
   */
  delegate(agent: string, input: unknown, options?: DelegateOptions): Promise<unknown>;
}

/** The child's authority when delegating. */
export interface DelegateOptions {
  /** The child's lease; every pattern must be covered by this job's lease. */
  lease?: Record<string, string[]>;
  /** The child's constraints; `expires_at` defaults to (and may not exceed) this job's. */
  leaseConstraints?: { expires_at?: string };
}

/** An agent: a name, a version and what it does. */
export interface AgentDefinition<I = unknown, O = unknown> {
  /** Agent name, `[a-z0-9][a-z0-9._-]*`. */
  readonly name: string;
  /** Version, `[a-zA-Z0-9.+_-]+`. */
  readonly version: string;
  /** One line on what it does. */
  readonly description?: string;
  /**
   * Lets one worker serve successive jobs (opt-in; each job gets a fresh
   * worker by default). Only jobs with the identical key share a worker:
   * the same principal, agent version, Deno permission set and egress globs.
   * Each job gets a new `ctx`, lease guard and signal; module globals, the
   * module cache, timers the agent left running and anything written to
   * `globalThis` persist between jobs, so an agent that keeps per-job state in
   * globals must not use this. A job that does not end with a result (an
   * error, a cancel, a timeout, a kill, a cap) retires its worker.
   */
  readonly reuse?: AgentReuse;
  /**
   * Lets up to this many jobs with the identical key run in one worker at
   * once (opt-in; implies `reuse`). For I/O-bound agents (model calls) whose
   * main cost is an isolate per job. A worker that hangs or crashes ends
   * exactly the jobs inside it.
   */
  readonly concurrency?: number;
  /** Runs one job; the resolved value is the job's result. */
  run(input: I, ctx: AgentContext): Promise<O> | O;
}

/** How long a reused worker lives (see {@linkcode AgentDefinition.reuse}). */
export interface AgentReuse {
  /** Jobs one worker serves before it is retired (default 1,000). */
  readonly maxJobs?: number;
  /** Seconds a worker may sit without a job before it is retired (default 60). */
  readonly idleSec?: number;
}

/**
 * Declares an agent. The module that holds an agent default-exports the
 * value this returns.
 *
 * @param definition the agent
 * @returns the same definition, frozen
 * @example
 * ```ts
 * import { defineAgent } from "./agent.ts";
 * export default defineAgent({ name: "noop", version: "1.0.0", run: () => null });
 * ```
 */
export function defineAgent<I, O>(definition: AgentDefinition<I, O>): AgentDefinition<I, O> {
  if (typeof definition?.run !== "function") {
    throw new TypeError("defineAgent: run must be a function");
  }
  const { reuse, concurrency } = definition;
  if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency >= 1)) {
    throw new TypeError("defineAgent: concurrency must be a positive integer");
  }
  for (const key of ["maxJobs", "idleSec"] as const) {
    const v = reuse?.[key];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) {
      throw new TypeError(`defineAgent: reuse.${key} must be a positive integer`);
    }
  }
  return Object.freeze({ ...definition });
}

/**
 * Thrown by the runtime's ctx methods (and catchable by agents) when the
 * lease, its expiry or its budget refuses an operation (`PERMISSION_DENIED`,
 * `LEASE_EXPIRED`, `BUDGET_EXHAUSTED`, `LEASE_SUBSET_VIOLATION`), or when a
 * tool or delegated job the runtime ran for the agent failed (its code).
 */
export class LeaseError extends Error {
  /** The ARCP error code. */
  readonly code: string;
  /**
   * Creates a lease error.
   *
   * @param code the ARCP error code
   * @param message what was refused
   */
  constructor(code: string, message: string) {
    super(message);
    this.name = "LeaseError";
    this.code = code;
  }
}
