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
  /**
   * The job's provisioned credentials (ARCP §9.8), current at every read: a
   * rotation replaces a value at once, and the list is empty before the job
   * is accepted and after it ends. Present a value only to its `endpoint`;
   * the sandbox refuses any request that carries it anywhere else.
   */
  readonly credentials: readonly AgentCredential[];
  /**
   * One credential by `id` or `profile` (the first one without an argument).
   *
   * @param idOrProfile a credential id (`cred_…`) or profile (`openai`)
   * @returns it, or undefined when the job has none such
   */
  credential(idOrProfile?: string): AgentCredential | undefined;
  /**
   * An OpenAI-compatible chat client bound to the job's credential of that
   * profile (or id) and to its `model.use` lease.
   *
   * @param idOrProfile which credential (default: the first)
   * @returns the client; its calls fail with `PERMISSION_DENIED` when the job has no such credential
   */
  model(idOrProfile?: string): ModelClient;
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

/** A provisioned credential as the agent sees it (ARCP §9.8). */
export interface AgentCredential {
  /** Stable id within the job (`cred_…`); a rotation keeps it. */
  readonly id: string;
  /** Auth scheme, `bearer`. */
  readonly scheme: string;
  /** The secret: send it only to `endpoint`. */
  readonly value: string;
  /** Base URL where it is valid, e.g. `https://gateway.internal/v1`. */
  readonly endpoint: string;
  /** API dialect hint, e.g. `openai`. */
  readonly profile?: string;
  /** What the upstream enforces. */
  readonly constraints?: {
    readonly expires_at?: string;
    readonly allowed_models?: readonly string[];
    readonly max_spend?: { readonly currency: string; readonly amount: number };
  };
}

/** One message of an OpenAI-compatible chat. */
export interface ChatMessage {
  /** `system`, `user`, `assistant` or `tool`. */
  role: string;
  /** The text. */
  content: string;
  /** Optional speaker name. */
  name?: string;
}

/** A chat completion request (the OpenAI wire fields; others are passed through). */
export interface ChatRequest {
  /** The model; checked against `model.use` before anything is sent. */
  model: string;
  /** The conversation so far. */
  messages: ChatMessage[];
  /** Upper bound on generated tokens. */
  max_tokens?: number;
  /** Sampling temperature. */
  temperature?: number;
  /** Any other field of the upstream's API. */
  [field: string]: unknown;
}

/** Token counts an upstream reported for one call. */
export interface ChatUsage {
  /** Tokens of the prompt. */
  prompt_tokens: number;
  /** Tokens generated. */
  completion_tokens: number;
  /** Both. */
  total_tokens: number;
}

/** The outcome of one chat call. */
export interface ChatAnswer {
  /** The whole generated text. */
  text: string;
  /** The model that answered, as the upstream named it. */
  model: string;
  /** Why generation stopped (`stop`, `length`, …), when the upstream said. */
  finishReason: string | null;
  /** Token counts, when the upstream reported them. */
  usage?: ChatUsage;
  /** What the call cost in USD, when the upstream reported it. */
  costUsd?: number;
}

/** Options of one {@linkcode ModelClient.chat} call. */
export interface ChatOptions {
  /** Receives each piece of generated text as it streams in. */
  onDelta?: (text: string) => void | Promise<void>;
  /** Also emit each piece as a `thought` event. */
  thoughts?: boolean;
  /** Stops the call (the job's own signal always does). */
  signal?: AbortSignal;
}

/**
 * An OpenAI-compatible chat client (`POST {endpoint}/chat/completions`,
 * streamed). Each call is checked against `model.use` and the budget before
 * any request, emits `tool_call`/`tool_result` events, and reports usage as
 * metrics (`tokens.*`, and `cost.model` in USD when the upstream states the
 * cost). Each request carries the job's `traceparent`, as `ctx.fetch`'s do.
 * An upstream's budget refusal rejects with a `LeaseError`
 * `BUDGET_EXHAUSTED`; any other refusal with `PERMISSION_DENIED` (403, a model
 * not allowed) or `INTERNAL_ERROR`.
 */
export interface ModelClient {
  /**
   * Runs one streamed chat completion.
   *
   * @param request the model and messages
   * @param options where the streamed text goes
   * @returns the whole answer
   */
  chat(request: ChatRequest, options?: ChatOptions): Promise<ChatAnswer>;
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
