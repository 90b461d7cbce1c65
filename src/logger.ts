/**
 * Operator logging. Lines go to stderr so that stdout stays clean for the
 * stdio transport: text (`TIME LEVEL message {fields}`) or JSON lines
 * (`{"time","level","msg",...fields}`), filtered by level. Info and debug
 * lines are written in batches, at most 250 ms late (a write per line was a
 * measurable part of a job's cost: two lines each; and every batch wakes a
 * thread of Deno's blocking pool and, twice, the event loop, so at 20 ms a
 * job arriving every 50 ms paid for a batch of its own); a warning or error is
 * written at once, after everything before it, and the batch is written at
 * exit and on an uncaught error. Writes never hold up the event loop: when
 * stderr stops taking lines (a stalled reader of the pipe), up to 4 Mi
 * characters wait and later lines are dropped, then counted in a warning
 * line once stderr takes lines again. Never pass a
 * secret (token, resume token, credential value) in a field; as a second
 * wall, fields whose names say they hold one are written as `[redacted]`.
 *
 * @module
 */
import { isoTime } from "./iso_time.ts";

/** Where the runtime reports what operators should know. */
export interface Logger {
  /** Detail for debugging; dropped unless the level is `debug`. */
  debug?(message: string, fields?: Record<string, unknown>): void;
  /** Something worth knowing. */
  info(message: string, fields?: Record<string, unknown>): void;
  /** Something went wrong but the runtime carries on. */
  warn(message: string, fields?: Record<string, unknown>): void;
  /** A fault. */
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Log levels, least severe first. */
export const LOG_LEVELS: readonly LogSeverity[] = ["debug", "info", "warn", "error"];

/** A log line's severity; a logger writes lines at or above its threshold. */
export type LogSeverity = "debug" | "info" | "warn" | "error";

/** How lines are written: human text or one JSON object per line. */
export type LogFormat = "text" | "json";

/** Options of {@linkcode stderrLogger}. */
export interface LoggerOptions {
  /** The least severe level written (default `info`). */
  level?: LogSeverity;
  /** Text or JSON lines (default text). */
  format?: LogFormat;
  /** Where a line goes (default stderr); for tests. */
  write?: (line: string) => void;
}

/**
 * How long (ms) an info or debug line may wait to be written with later
 * ones: long enough that jobs more than 4 a second share a batch (bench/RESULTS.md,
 * the wake-up census), short enough for an operator watching the log.
 */
const BATCH_MS = 250;

/** Characters of waiting lines that are written at once. */
const BATCH_CHARS = 64 * 1024;

/**
 * Characters that may wait while stderr is not taking lines (a stalled log
 * reader); lines past it are dropped and counted, so a reader that never
 * reads costs bounded memory.
 */
const MAX_WAITING_CHARS = 4 * 1024 * 1024;

/** Writes a line to this process's stderr (`now`: without waiting for a batch), in the line's format. */
type StderrLines = (line: string, now: boolean, json: boolean) => void;

/** Writes to this process's stderr, shared by every logger so lines keep their order. */
let stderrLines: StderrLines | undefined;

/**
 * A writer of lines to stderr that batches all but urgent ones. Writes are
 * asynchronous, one at a time: a reader of stderr that is slow or stopped
 * (a full pipe) holds back the log, never the event loop. At exit and on an
 * uncaught error, what still waits is written synchronously.
 *
 * @returns write a line
 */
function batchedStderr(): StderrLines {
  const encoder = new TextEncoder();
  let waiting: string[] = [];
  let chars = 0;
  let dropped = 0;
  let droppedJson = false;
  let writing = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const take = (): Uint8Array | undefined => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (dropped > 0) {
      waiting.push(droppedNotice(dropped, droppedJson));
      dropped = 0;
    }
    if (waiting.length === 0) return undefined;
    const bytes = encoder.encode(waiting.join("\n") + "\n");
    waiting = [];
    chars = 0;
    return bytes;
  };
  const flush = async () => {
    if (writing) return;
    const bytes = take();
    if (!bytes) return;
    writing = true;
    try {
      for (let off = 0; off < bytes.length;) off += await Deno.stderr.write(bytes.subarray(off));
    } catch {
      // stderr is gone: there is nobody left to tell.
    } finally {
      writing = false;
    }
    // Lines that came while this batch was being written go next.
    if (waiting.length > 0 || dropped > 0) flush();
  };
  const flushNow = () => {
    const bytes = take();
    try {
      for (let off = 0; bytes && off < bytes.length;) {
        off += Deno.stderr.writeSync(bytes.subarray(off));
      }
    } catch {
      // stderr is gone: there is nobody left to tell.
    }
  };
  for (const event of ["unload", "error", "unhandledrejection"]) {
    globalThis.addEventListener(event, flushNow);
  }
  return (line, now, json) => {
    if (chars + line.length > MAX_WAITING_CHARS) {
      dropped++;
      droppedJson = json;
      return;
    }
    waiting.push(line);
    chars += line.length;
    if (now || chars >= BATCH_CHARS) {
      flush();
      return;
    }
    if (timer === undefined) {
      const t = timer = setTimeout(flush, BATCH_MS);
      // A waiting line never keeps the process alive; exit writes it.
      Deno.unrefTimer(t);
    }
  };
}

/**
 * The warning written in place of lines dropped while stderr took none.
 *
 * @param n how many lines were dropped
 * @param json whether the lines were JSON lines
 * @returns the line
 */
function droppedNotice(n: number, json: boolean): string {
  const time = isoTime(Date.now());
  const msg = "log lines dropped: stderr was not taking them";
  return json
    ? JSON.stringify({ time, level: "warn", msg, dropped: n })
    : `${time} WARN ${msg} {"dropped":${n}}`;
}

/** Field names that hold a secret, whatever the caller meant; `*_id` fields name, never hold. */
const SECRET_FIELD =
  /^(?!.*_id$).*(token|secret|password|authorization|api_?key|admin_?key|credential_value|bearer)/i;

/** Field names already tested against {@linkcode SECRET_FIELD}: lines repeat a few names. */
const secretNames = new Map<string, boolean>();

/** Names remembered at most; past it they are tested each time. */
const MAX_SECRET_NAMES = 1024;

/** Whether a field name says it holds a secret. */
function secretName(k: string): boolean {
  let secret = secretNames.get(k);
  if (secret === undefined) {
    secret = SECRET_FIELD.test(k);
    if (secretNames.size < MAX_SECRET_NAMES) secretNames.set(k, secret);
  }
  return secret;
}

/** Whether a field named like a secret is anywhere in a value. */
function holdsSecret(value: unknown): boolean {
  if (value === null || typeof value !== "object") return false;
  if (Array.isArray(value)) return value.some(holdsSecret);
  for (const k in value) {
    if (secretName(k) || holdsSecret((value as Record<string, unknown>)[k])) return true;
  }
  return false;
}

/** Whether an object has an own enumerable field, without listing them. */
function hasFields(value: Record<string, unknown>): boolean {
  for (const _ in value) return true;
  return false;
}

/**
 * Replaces the values of fields named like secrets, at any depth.
 *
 * @param value a field's value
 * @returns the value, secrets replaced
 */
function redact(value: unknown): unknown {
  // Most lines hold no secret: they are written as they are, not copied.
  if (!holdsSecret(value)) return value;
  if (Array.isArray(value)) return value.map(redact);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, secretName(k) ? "[redacted]" : redact(v)]),
  );
}

/**
 * A logger that writes one line per record to stderr.
 *
 * @param options level and format
 * @returns the logger
 * @example
 * ```ts
 * import { stderrLogger } from "./logger.ts";
 * const log = stderrLogger({ level: "warn", format: "json" });
 * log.info("not written");
 * log.warn("disk nearly full", { free_mb: 12 });
 * ```
 */
export function stderrLogger(options: LoggerOptions = {}): Logger {
  const min = LOG_LEVELS.indexOf(options.level ?? "info");
  const json = options.format === "json";
  const write = options.write ??
    ((line: string, level: LogSeverity) =>
      (stderrLines ??= batchedStderr())(line, level === "warn" || level === "error", json));
  const line = (level: LogSeverity, message: string, fields?: Record<string, unknown>) => {
    if (LOG_LEVELS.indexOf(level) < min) return;
    const safe = fields ? redact(fields) as Record<string, unknown> : {};
    const time = isoTime(Date.now());
    if (json) {
      // The record's own keys first and last: first for reading, last so no field overrides them.
      const own = { time, level, msg: message };
      write(JSON.stringify({ ...own, ...safe, ...own }), level);
      return;
    }
    const extra = hasFields(safe) ? " " + JSON.stringify(safe) : "";
    write(`${time} ${level.toUpperCase()} ${message}${extra}`, level);
  };
  return {
    debug: (m, f) => line("debug", m, f),
    info: (m, f) => line("info", m, f),
    warn: (m, f) => line("warn", m, f),
    error: (m, f) => line("error", m, f),
  };
}

/**
 * A logger that drops everything (for tests and embedding).
 *
 * @returns the logger
 */
export function silentLogger(): Logger {
  return { debug() {}, info() {}, warn() {}, error() {} };
}
