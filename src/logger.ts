/**
 * Operator logging. Lines go to stderr so that stdout stays clean for the
 * stdio transport. Never pass a secret (token, resume token, credential) in
 * a field.
 *
 * @module
 */

/** Where the runtime reports what operators should know. */
export interface Logger {
  /** Something worth knowing. */
  info(message: string, fields?: Record<string, unknown>): void;
  /** Something went wrong but the runtime carries on. */
  warn(message: string, fields?: Record<string, unknown>): void;
  /** A fault. */
  error(message: string, fields?: Record<string, unknown>): void;
}

/**
 * A logger that writes one line per record to stderr.
 *
 * @returns the logger
 */
export function stderrLogger(): Logger {
  const line = (level: string, message: string, fields?: Record<string, unknown>) => {
    const extra = fields && Object.keys(fields).length > 0 ? " " + JSON.stringify(fields) : "";
    console.error(`${new Date().toISOString()} ${level} ${message}${extra}`);
  };
  return {
    info: (m, f) => line("INFO", m, f),
    warn: (m, f) => line("WARN", m, f),
    error: (m, f) => line("ERROR", m, f),
  };
}

/**
 * A logger that drops everything (for tests and embedding).
 *
 * @returns the logger
 */
export function silentLogger(): Logger {
  return { info() {}, warn() {}, error() {} };
}
