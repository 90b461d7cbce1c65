/**
 * The runtime side of every agent: computes the worker's permissions from
 * the lease, launches it, and turns what it sends into checked, typed
 * callbacks. Nothing the worker sends is trusted: messages are validated,
 * events are capped in size and in flight, calls are bounded, and a worker
 * whose event loop stops beating is killed.
 *
 * @module
 */
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import { EVENT_BODIES, isReservedKind, LOG_LEVELS, VENDOR_KIND } from "../protocol/events.ts";
import { describeZodError } from "../protocol/envelope.ts";
import { MAX_NESTING_DEPTH, nestsDeeperThan } from "../protocol/nesting.ts";
import type { AgentChannel, AgentLauncher, AheadTemplate, JobExit } from "./channel.ts";
import {
  BEAT_INTERVAL_MS,
  EVENT_WINDOW,
  EVENT_WINDOW_BYTES,
  MAX_EVENT_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_PENDING_CALLS,
} from "./worker/limits.ts";
import { permissionsForLease } from "./permissions.ts";
import { checkLeaseProtection, type Protection } from "./protection.ts";
import type { Lease } from "../protocol/lease.ts";
import { checkResult } from "./result_check.ts";
import type {
  AgentEvent,
  AgentRun,
  Sandbox,
  SandboxJob,
  SandboxListener,
  Sharing,
  SharingAgent,
} from "./sandbox.ts";
import { type WorkerMessage, WorkerMessageSchema } from "./worker/wire.ts";
import { assertNoEscapingSymlinks, DEFAULT_SCAN_LIMIT } from "./symlink_scan.ts";
import { endpointGlobs } from "./credential_egress.ts";

/** Options of {@linkcode SupervisedSandbox}. */
export interface SupervisorOptions {
  /** Beats a worker may miss before it is declared hung (default 5). */
  missedBeats?: number;
  /** How often a worker beats (ms, default 1000). */
  beatIntervalMs?: number;
  /** Grace before the first beat, while the worker loads (ms, default 30 s). */
  startGraceMs?: number;
  /** Sustained events per second one job may emit (default 20,000). */
  eventRate?: number;
  /** Events one job may emit in a burst above that rate (default 50,000). */
  eventBurst?: number;
  /** Filesystem entries checked for escaping symlinks at job start (default 50,000). */
  scanLimit?: number;
}

/** Defaults of {@linkcode SupervisorOptions}. */
export const DEFAULT_SUPERVISOR_OPTIONS: Required<SupervisorOptions> = {
  missedBeats: 5,
  beatIntervalMs: BEAT_INTERVAL_MS,
  startGraceMs: 30_000,
  eventRate: 20_000,
  eventBurst: 50_000,
  scanLimit: DEFAULT_SCAN_LIMIT,
};

/**
 * Credits are given back to a worker in grants of at least a quarter of its
 * window. While a grant waits here, the worker still holds the rest of its
 * window minus what is in flight, so it can be out of credit only with more
 * than this many events in flight, whose commits then complete the grant;
 * and a job that emits fewer events costs no credit message (a frame, a
 * worker wake-up) at all. A quarter rather than half: a commit of small
 * events holds about half a window, and the grant it completes reaches the
 * worker while the commit after it is still in flight.
 */
const GRANT_AT = EVENT_WINDOW / 4;

/**
 * Bytes given back at once, likewise a quarter of the byte window: credit
 * goes back when either count reaches its quarter, so the worker, once out
 * of either, holds more than a quarter of it in flight, whose commits then
 * complete a grant. The largest event fits in the three quarters left.
 */
const GRANT_BYTES_AT = EVENT_WINDOW_BYTES / 4;

/** Kinds the runtime itself produces; an agent may not forge them. */
const RUNTIME_KINDS = new Set(["result_chunk", "delegate"]);

/** Deno's refusals: permission checks, symlink creation, and imports a host may not download. */
const PERMISSION_MESSAGE =
  /Requires (read|write|net|env|run|ffi|sys|import) access|requires unscoped --allow|--cached-only is specified|--no-npm is specified/;

/** Codes an agent's own error may carry through to the job's terminal. */
const AGENT_CODES = new Set(["PERMISSION_DENIED", "LEASE_EXPIRED", "BUDGET_EXHAUSTED"]);

/**
 * Maps an agent failure to its ARCP error: Deno permission refusals
 * (`NotCapable`, and the `TypeError` a denied `import()` throws) are
 * `PERMISSION_DENIED`, lease errors keep their code, the rest is
 * `INTERNAL_ERROR`.
 *
 * @param name the error's name
 * @param message its message
 * @param code its `code`, when it carried one
 * @returns the ARCP error
 */
export function agentFailure(name: string, message: string, code?: string): ArcpError {
  if (name === "NotCapable" || PERMISSION_MESSAGE.test(message)) {
    return new ArcpError("PERMISSION_DENIED", message);
  }
  if (code && AGENT_CODES.has(code)) return new ArcpError(code as "PERMISSION_DENIED", message);
  return new ArcpError("INTERNAL_ERROR", `agent failed: ${message || name}`);
}

/**
 * Checks an event from an agent.
 *
 * @param kind the event kind
 * @param body the event body
 * @returns the body's JSON, as it will be sent (measured for the cap, so it is serialized once)
 * @throws {ArcpError} when the kind is not the agent's to emit or the body is malformed or too large
 */
export function checkAgentEvent(
  kind: string,
  body: Record<string, unknown>,
): string {
  if (RUNTIME_KINDS.has(kind)) {
    throw new ArcpError("PERMISSION_DENIED", `agents may not emit ${kind} events directly`);
  }
  if (nestsDeeperThan(body, MAX_NESTING_DEPTH)) {
    throw new ArcpError(
      "INTERNAL_ERROR",
      `agent sent a ${kind} event nesting deeper than ${MAX_NESTING_DEPTH} levels`,
      { cap: "event_depth", limit: MAX_NESTING_DEPTH },
    );
  }
  if (isReservedKind(kind)) {
    // Validated, but the body goes on as the agent sent it: zod's parsed copy
    // would silently lose `__proto__` keys. The frequent kinds' usual bodies
    // are accepted by hand; anything else (and every refusal's wording) is the schema's.
    const parsed = plainBody(kind, body)
      ? { success: true as const }
      : EVENT_BODIES[kind].safeParse(body);
    if (!parsed.success) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `agent sent a bad ${kind} event: ${describeZodError(parsed.error, "body")}`,
      );
    }
  } else if (!VENDOR_KIND.test(kind)) {
    throw new ArcpError(
      "INTERNAL_ERROR",
      `agent sent an event of unknown kind ${JSON.stringify(kind.slice(0, 64))}`,
    );
  }
  const json = JSON.stringify(body);
  if (json.length > MAX_EVENT_BYTES) {
    throw new ArcpError(
      "INTERNAL_ERROR",
      `agent sent a ${kind} event of ${json.length} bytes; the cap is ${MAX_EVENT_BYTES}`,
    );
  }
  return json;
}

/** An optional field that, when present, is a string. */
function optionalString(v: unknown): boolean {
  return v === undefined || typeof v === "string";
}

/** A finite number, at least 0. */
function count(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0;
}

const LOG_LEVEL_SET: ReadonlySet<unknown> = new Set(LOG_LEVELS);

/**
 * Whether a body of one of the most frequent reserved kinds is one its
 * schema in `EVENT_BODIES` accepts, checked without zod. False means only
 * "not decided here": the schema then judges (and words any refusal).
 *
 * @param kind the event kind
 * @param b the body
 * @returns true when the schema would accept it
 */
export function plainBody(kind: string, b: Record<string, unknown>): boolean {
  switch (kind) {
    case "progress":
      return count(b.current) &&
        (b.total === undefined || (count(b.total) && b.current <= b.total)) &&
        optionalString(b.units) && optionalString(b.message);
    case "log":
      return LOG_LEVEL_SET.has(b.level) && typeof b.message === "string" &&
        b.attributes === undefined;
    case "thought":
      return typeof b.text === "string";
    case "status":
      return typeof b.phase === "string" && b.phase.length > 0 && optionalString(b.message);
    default:
      return false;
  }
}

/**
 * Whether a worker message is a liveness beat, exactly as the strict wire
 * schema would accept it: every running job's worker sends one a second,
 * so thousands of jobs would otherwise cost a schema parse each.
 *
 * @param raw the message as the worker posted it
 * @returns true for a well-formed beat
 */
export function isBeatMessage(raw: unknown): raw is Extract<WorkerMessage, { t: "beat" }> {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return false;
  const keys = Object.keys(raw);
  return keys.length === 1 && keys[0] === "t" && (raw as { t: unknown }).t === "beat";
}

/**
 * The message as a record when it is a plain object whose keys are exactly
 * `keys`: the strict schemas refuse unknown keys and need every listed one.
 */
function withExactKeys(
  raw: unknown,
  keys: ReadonlySet<string>,
): Record<string, unknown> | undefined {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return undefined;
  const own = Object.keys(raw);
  if (own.length !== keys.size || !own.every((k) => keys.has(k))) return undefined;
  return raw as Record<string, unknown>;
}

const EVENT_KEYS = new Set(["t", "j", "kind", "body"]);

/**
 * Whether a worker message is a well-formed `event`, exactly as the strict
 * wire schema would accept it, without building the schema's parsed copy.
 *
 * @param raw the message as the worker posted it
 * @returns true for a well-formed event
 */
export function isEventMessage(raw: unknown): raw is Extract<WorkerMessage, { t: "event" }> {
  const m = withExactKeys(raw, EVENT_KEYS);
  if (m === undefined) return false;
  const { t, j, kind, body } = m;
  return t === "event" && typeof j === "number" && Number.isInteger(j) && j >= 0 &&
    typeof kind === "string" && kind.length >= 1 && kind.length <= 200 &&
    body !== null && typeof body === "object" && !Array.isArray(body);
}

const EVENTS_KEYS = new Set(["t", "j", "items"]);

/**
 * Whether a worker message is a well-formed `events` batch, exactly as the
 * strict wire schema would accept it, without building the schema's parsed copy.
 *
 * @param raw the message as the worker (or its sandbox process) sent it
 * @returns true for a well-formed batch
 */
export function isEventsMessage(raw: unknown): raw is Extract<WorkerMessage, { t: "events" }> {
  const m = withExactKeys(raw, EVENTS_KEYS);
  if (m === undefined) return false;
  const { t, j, items } = m;
  if (t !== "events" || typeof j !== "number" || !Number.isInteger(j) || j < 0) return false;
  if (!Array.isArray(items) || items.length < 1 || items.length > EVENT_WINDOW) return false;
  for (const item of items) {
    if (!Array.isArray(item) || item.length !== 2) return false;
    const [kind, body] = item;
    if (typeof kind !== "string" || kind.length < 1 || kind.length > 200) return false;
    if (body === null || typeof body !== "object" || Array.isArray(body)) return false;
  }
  return true;
}

const RESULT_KEYS = new Set(["t", "j", "value"]);

/**
 * Whether a worker message is a well-formed `result`, exactly as the strict
 * wire schema would accept it, without building the schema's parsed copy:
 * every job ends with one, and its value is checked on its own
 * (`checkResult`).
 *
 * @param raw the message as the worker posted it
 * @returns true for a well-formed result
 */
export function isResultMessage(raw: unknown): raw is Extract<WorkerMessage, { t: "result" }> {
  const m = withExactKeys(raw, RESULT_KEYS);
  if (m === undefined) return false;
  const { t, j } = m;
  return t === "result" && typeof j === "number" && Number.isInteger(j) && j >= 0;
}

/** Runs agents through a launcher, supervising each one. */
export class SupervisedSandbox implements Sandbox {
  #launcher: AgentLauncher;
  #protection: Protection;
  #denyPaths: string[];
  #denyWritePaths: string[];
  /** The sharing agents {@linkcode expect} last heard of, and their empty-lease templates. */
  #aheadOf: readonly SharingAgent[] | undefined;
  #ahead: AheadTemplate[] = [];
  #missedBeats: number;
  #beatMs: number;
  #startGraceMs: number;
  #eventRate: number;
  #eventBurst: number;
  #scanLimit: number;
  /** Each running job's liveness check, run together once per beat interval. */
  #watches = new Set<(now: number, late: number) => void>();
  #tick: ReturnType<typeof setTimeout> | undefined;
  /** When the armed tick should run; how late it ran tells whether this runtime's loop stalled. */
  #due = 0;

  /**
   * @param launcher where workers start
   * @param protection what no lease reaches (the runtime's own state, code and listeners)
   * @param options liveness tunables
   */
  constructor(
    launcher: AgentLauncher,
    protection: Protection = { paths: [], listeners: [] },
    options: SupervisorOptions = {},
  ) {
    this.#launcher = launcher;
    this.#protection = protection;
    this.#denyPaths = protection.paths.filter((p) => p.access === "read-write").map((p) => p.path);
    this.#denyWritePaths = protection.paths.filter((p) => p.access === "write").map((p) => p.path);
    const d = DEFAULT_SUPERVISOR_OPTIONS;
    this.#missedBeats = options.missedBeats ?? d.missedBeats;
    this.#beatMs = options.beatIntervalMs ?? d.beatIntervalMs;
    this.#startGraceMs = options.startGraceMs ?? d.startGraceMs;
    this.#eventRate = options.eventRate ?? d.eventRate;
    this.#eventBurst = options.eventBurst ?? d.eventBurst;
    this.#scanLimit = options.scanLimit ?? d.scanLimit;
  }

  /**
   * Runs a job's liveness check on the next ticks until it is removed. One
   * timer serves every job, and it stays armed across jobs while any run or
   * ran in its last interval: a job then costs no timer of its own.
   */
  #watch(check: (now: number, late: number) => void): void {
    this.#watches.add(check);
    if (this.#tick === undefined) this.#arm();
  }

  #arm(): void {
    this.#due = Date.now() + this.#beatMs;
    this.#tick = setTimeout(() => {
      this.#tick = undefined;
      const now = Date.now();
      const late = now - this.#due;
      for (const check of [...this.#watches]) check(now, late);
      // A job started by a check's fallout (a failure's listener) may have armed it already.
      if (this.#watches.size > 0 && this.#tick === undefined) this.#arm();
    }, this.#beatMs);
  }

  /**
   * Refuses a lease that would reach protected paths or the runtime's listeners.
   *
   * @param lease the requested lease
   * @throws {ArcpError} `PERMISSION_DENIED` naming the pattern and what it would reach
   */
  checkLease(lease: Lease): void {
    checkLeaseProtection(lease, this.#protection);
  }

  /**
   * Refuses a job its launcher could not give a worker soon (see
   * {@linkcode Sandbox.checkCapacity}).
   *
   * @param agent whether the agent shares its workers
   * @throws {ArcpError} retryable `INTERNAL_ERROR` with `details.cap: "sandbox_busy"`
   */
  checkCapacity(agent: { sharing?: Sharing }): void {
    const refusal = this.#launcher.refusal?.(agent);
    if (refusal) throw new ArcpError("INTERNAL_ERROR", refusal, { cap: "sandbox_busy" });
  }

  /**
   * Passes on that a principal opened a session (see {@linkcode Sandbox.expect}),
   * with what each sharing agent's job runs with under an empty lease.
   *
   * @param principal who opened it
   * @param agents the agents that share workers
   */
  expect(principal: string, agents: readonly SharingAgent[]): void {
    if (!this.#launcher.expect) return;
    if (this.#aheadOf !== agents) {
      // The same permissions a job of the agent gets from `start` when it asks for no lease.
      const permissions = permissionsForLease({}, {
        denyPaths: this.#denyPaths,
        denyWritePaths: this.#denyWritePaths,
      });
      this.#aheadOf = agents;
      this.#ahead = agents.map((a) => ({
        agentUrl: a.url,
        permissions,
        egress: [],
        sharing: a.sharing,
      }));
    }
    this.#launcher.expect(principal, this.#ahead);
  }

  /**
   * Starts one job's agent.
   *
   * @param job what to run
   * @param listener where its events and outcome go
   * @returns a handle to stop it
   * @throws {ArcpError} `PERMISSION_DENIED` when the lease reaches protected
   *   state (checked again here: the filesystem may have changed since submit)
   */
  async start(job: SandboxJob, listener: SandboxListener): Promise<AgentRun> {
    this.checkLease(job.lease);
    const permissions = permissionsForLease(job.lease, {
      denyPaths: this.#denyPaths,
      denyWritePaths: this.#denyWritePaths,
    });
    const roots = [...(permissions.read || []), ...(permissions.write || [])];
    // Most leases grant no paths: then the job starts in this turn, not behind whatever
    // else the runtime queued meanwhile (an await always yields).
    if (roots.length > 0) await assertNoEscapingSymlinks(roots, this.#scanLimit);
    let done = false;
    let tokens = this.#eventBurst;
    let refilled = Date.now();
    let inflight = 0;
    let inflightBytes = 0;
    let toGrant = 0;
    let toGrantBytes = 0;
    let pendingCalls = 0;
    // A worker still loading has a grace before its first beat; one known alive has none.
    let lastBeat = Date.now() + this.#startGraceMs - this.#beatMs;
    let heard = false;
    let channel: AgentChannel | undefined;
    /** Set while the launcher hands the job a worker: a worker known alive then was ready. */
    let launching = true;
    let warm = false;
    /** Whether the worker (and its process's egress proxy) hold credentials of this job. */
    let holding = false;
    const finish = (how: JobExit, delivered?: Promise<unknown>) => {
      done = true;
      this.#watches.delete(watch);
      // A shared worker lives on: the job's credentials leave it with the job.
      if (holding) channel?.post({ t: "credentials", credentials: [] });
      channel?.end(how, delivered);
    };
    /** Ends the job; `forced` unless the agent itself finished (threw, or its worker died). */
    const fail = (error: ArcpError, forced = true) => {
      if (done) return;
      finish(forced ? "forced" : "failed");
      listener.onError(error);
    };
    const credit = (n: number, bytes: number) => {
      inflight -= n;
      inflightBytes -= bytes;
      const due = toGrant >= GRANT_AT || toGrantBytes >= GRANT_BYTES_AT;
      toGrant += n;
      toGrantBytes += bytes;
      if (!due && (toGrant >= GRANT_AT || toGrantBytes >= GRANT_BYTES_AT)) queueMicrotask(grant);
    };
    const grant = () => {
      if (toGrant === 0 || done) return;
      channel!.post({ t: "credit", n: toGrant, b: toGrantBytes });
      toGrant = 0;
      toGrantBytes = 0;
    };
    const watch = (now: number, late: number) => {
      if (late > this.#beatMs / 2) {
        // This runtime's own loop stalled: the worker's beats may sit unread
        // behind that stall, so it is not counted against the worker; the
        // next tick judges once the backlog has been read.
        lastBeat += late;
      } else if (now - lastBeat > this.#missedBeats * this.#beatMs) {
        fail(
          new ArcpError(
            "HEARTBEAT_LOST",
            `agent missed ${this.#missedBeats} liveness beats; its event loop is blocked`,
          ),
        );
      }
    };
    this.#watch(watch);
    /**
     * Events of one message, in order: each is held to the rate and window
     * caps and checked; those before a refused one still go on, as they
     * would have in messages of their own.
     */
    const events = (items: Array<[string, Record<string, unknown>]>) => {
      const checked: AgentEvent[] = [];
      let bytes = 0;
      let refusal: ArcpError | undefined;
      const now = Date.now();
      tokens = Math.min(this.#eventBurst, tokens + ((now - refilled) / 1000) * this.#eventRate);
      refilled = now;
      // Indexed rather than destructured: a destructuring loop allocated
      // iterators per event until V8 optimized it, and most jobs end sooner.
      for (let i = 0; i < items.length; i++) {
        const kind = items[i][0];
        const body = items[i][1];
        if (--tokens < 0) {
          refusal = new ArcpError(
            "INTERNAL_ERROR",
            `agent exceeded the event rate cap (${this.#eventRate}/s, bursts of ${this.#eventBurst})`,
          );
          break;
        }
        if (++inflight > EVENT_WINDOW) {
          refusal = new ArcpError(
            "INTERNAL_ERROR",
            `agent sent more than ${EVENT_WINDOW} events without waiting for the runtime`,
          );
          break;
        }
        let json: string;
        try {
          json = checkAgentEvent(kind, body);
        } catch (err) {
          refusal = err as ArcpError;
          break;
        }
        const size = kind.length + json.length;
        if ((inflightBytes += size) > EVENT_WINDOW_BYTES) {
          refusal = new ArcpError(
            "INTERNAL_ERROR",
            `agent sent more than ${EVENT_WINDOW_BYTES} bytes of events without waiting for the runtime`,
          );
          break;
        }
        bytes += size;
        checked.push([kind, body, json]);
      }
      if (checked.length > 0) {
        const n = checked.length;
        listener.onEvents(checked).then(() => credit(n, bytes), () => {});
      }
      if (refusal) fail(refusal);
    };
    const onMessage = (raw: unknown) => {
      if (done) return;
      // Events, beats and results are most of the traffic: checked by hand,
      // the zod schema only for the rest (and to word the refusal of a malformed one).
      const parsed = isEventsMessage(raw) || isEventMessage(raw) || isBeatMessage(raw) ||
          isResultMessage(raw)
        ? { success: true as const, data: raw }
        : WorkerMessageSchema.safeParse(raw);
      if (!parsed.success) {
        fail(
          new ArcpError(
            "PERMISSION_DENIED",
            `agent broke the sandbox protocol: ${describeZodError(parsed.error, "message")}`,
          ),
        );
        return;
      }
      const msg: WorkerMessage = parsed.data;
      // Any message proves the worker's event loop ran just now.
      lastBeat = Date.now();
      heard = true;
      switch (msg.t) {
        case "beat":
          return;
        case "event":
          // The raw body: the wire schema's parsed copy drops `__proto__` keys.
          return void events([[msg.kind, (raw as { body: Record<string, unknown> }).body]]);
        case "events":
          return void events(msg.items);
        case "chunk": {
          // As the worker counts it: a chunk larger than any message may be is the chunk cap's to refuse.
          const size = Math.min(msg.data.length, MAX_MESSAGE_BYTES);
          if (++inflight > EVENT_WINDOW || (inflightBytes += size) > EVENT_WINDOW_BYTES) {
            fail(
              new ArcpError(
                "INTERNAL_ERROR",
                `agent sent more than ${EVENT_WINDOW} result chunks or ${EVENT_WINDOW_BYTES} bytes ` +
                  "of them without waiting for the runtime",
              ),
            );
            return;
          }
          listener.onChunk(msg.data, msg.encoding).then(() => credit(1, size), () => {});
          return;
        }
        case "chunk_end":
          // It took a credit like a chunk; give it back.
          if (++inflight <= EVENT_WINDOW) credit(1, 0);
          listener.onChunkEnd();
          return;
        case "call": {
          if (++pendingCalls > MAX_PENDING_CALLS) {
            fail(
              new ArcpError(
                "INTERNAL_ERROR",
                `agent has more than ${MAX_PENDING_CALLS} calls waiting on the runtime`,
              ),
            );
            return;
          }
          listener.onCall(msg.op, msg.args).then(
            (value) => channel!.post({ t: "reply", id: msg.id, ok: true, value }),
            (err) => {
              const e = toArcpError(err);
              channel!.post({
                t: "reply",
                id: msg.id,
                ok: false,
                code: e.code,
                message: e.message,
              });
            },
          ).finally(() => pendingCalls--);
          return;
        }
        case "result": {
          let value: unknown;
          try {
            value = checkResult(msg.value);
          } catch (err) {
            fail(err as ArcpError);
            return;
          }
          // Done before the listener hears of it: ending the job kills a run not yet done.
          const delivered = Promise.withResolvers<void>();
          finish("done", delivered.promise);
          try {
            delivered.resolve(listener.onResult(value));
          } catch (err) {
            delivered.resolve();
            throw err;
          }
          return;
        }
        case "error":
          fail(
            msg.cap
              ? new ArcpError("INTERNAL_ERROR", msg.message, { cap: msg.cap })
              : agentFailure(msg.name, msg.message, msg.code),
            false,
          );
          return;
        case "exit":
          fail(
            new ArcpError(
              "INTERNAL_ERROR",
              msg.via === "close"
                ? "agent closed its worker (self.close()) before returning"
                : "agent called Deno.exit() before returning",
            ),
            false,
          );
          return;
        case "described":
        case "ready":
          return;
      }
    };
    try {
      channel = this.#launcher.launch({
        jobId: job.jobId,
        principal: job.principal,
        agentUrl: job.agentUrl,
        permissions,
        egress: [
          ...(job.lease["net.fetch"] ?? []),
          ...new Set((job.credentials ?? []).flatMap((c) => endpointGlobs(c.endpoint))),
        ],
        ...(job.sharing ? { sharing: job.sharing } : {}),
      }, {
        message: onMessage,
        crash: (reason, cap) =>
          fail(
            cap ? new ArcpError("INTERNAL_ERROR", reason, { cap }) : agentFailure("Error", reason),
            false,
          ),
        // Judged from the worker's last sign of life, but never from more than one
        // interval ago: a beat it sent may still sit unread behind this runtime's own work.
        alive: (at) => {
          if (launching) warm = true;
          const since = Math.max(at, Date.now() - this.#beatMs);
          lastBeat = heard ? Math.max(lastBeat, since) : since;
        },
      });
    } catch (err) {
      this.#watches.delete(watch);
      throw err;
    }
    launching = false;
    const deliver = (credentials: NonNullable<SandboxJob["credentials"]>) => {
      if (done || (!holding && credentials.length === 0)) return;
      holding = credentials.length > 0;
      channel!.post({ t: "credentials", credentials });
    };
    // Before `start`, so the agent's first line already sees them.
    if (job.credentials) deliver(job.credentials);
    channel.post({
      t: "start",
      jobId: job.jobId,
      traceId: job.traceId,
      ...(job.spanId ? { spanId: job.spanId } : {}),
      input: job.input,
      lease: job.lease,
      beatMs: this.#beatMs,
    });
    return {
      warm,
      credentials: deliver,
      abort: (reason) => {
        if (!done) channel!.post({ t: "abort", reason });
      },
      kill: () => {
        if (!done) finish("forced");
      },
    };
  }

  /** Stops every worker. */
  close(): Promise<void> {
    clearTimeout(this.#tick);
    this.#tick = undefined;
    this.#watches.clear();
    return this.#launcher.close();
  }
}
