/**
 * What operators see, captured for tests: a logger that keeps every line
 * and lets a test await one, and a reader of one sample of `GET /metrics`.
 *
 * @module
 */
import type { Logger } from "../../src/logger.ts";

/** One log line as the runtime emitted it. */
export interface LogRecord {
  /** INFO, WARN or ERROR. */
  level: "INFO" | "WARN" | "ERROR";
  /** The message. */
  message: string;
  /** Its fields. */
  fields: Record<string, unknown>;
}

/** A logger that keeps every line. */
export class CaptureLogger implements Logger {
  /** Every line so far, in order. */
  readonly records: LogRecord[] = [];
  #wake: Array<() => void> = [];

  /** @inheritdoc */
  info(message: string, fields: Record<string, unknown> = {}): void {
    this.#add({ level: "INFO", message, fields });
  }

  /** @inheritdoc */
  warn(message: string, fields: Record<string, unknown> = {}): void {
    this.#add({ level: "WARN", message, fields });
  }

  /** @inheritdoc */
  error(message: string, fields: Record<string, unknown> = {}): void {
    this.#add({ level: "ERROR", message, fields });
  }

  #add(record: LogRecord): void {
    this.records.push(record);
    const wake = this.#wake;
    this.#wake = [];
    for (const f of wake) f();
  }

  /**
   * The lines that match.
   *
   * @param pred which
   * @returns them, in order
   */
  matching(pred: (r: LogRecord) => boolean): LogRecord[] {
    return this.records.filter(pred);
  }

  /**
   * Waits for a line that matches (one already logged counts).
   *
   * @param pred which
   * @param ms how long before giving up
   * @param what what is awaited, for the timeout error
   * @returns the first matching line
   */
  async waitFor(
    pred: (r: LogRecord) => boolean,
    ms = 20_000,
    what = "a log line",
  ): Promise<LogRecord> {
    const deadline = Date.now() + ms;
    while (true) {
      const hit = this.records.find(pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out waiting for ${what}; logged: ${
            JSON.stringify(this.records.map((r) => r.message))
          }`,
        );
      }
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.#wake.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  /** @returns every line as text, to search for what must never be logged */
  text(): string {
    return this.records.map((r) => `${r.message} ${JSON.stringify(r.fields)}`).join("\n");
  }
}

/**
 * Reads `GET /metrics` once.
 *
 * @param http the server's `http://host:port`
 * @returns the exposition text
 */
export async function scrape(http: string): Promise<string> {
  const res = await fetch(`${http}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return await res.text();
}

/**
 * Scrapes `/metrics` until `ready` holds for the exposition (a gauge
 * reflects a process's report, a counter an event just handled).
 *
 * @param http the server's `http://host:port`
 * @param ready whether the exposition shows what is awaited
 * @param what what is awaited, for the error
 * @returns the exposition that showed it
 * @throws {Error} after 20 s without it, with the last exposition
 */
export async function scrapeUntil(
  http: string,
  ready: (text: string) => boolean,
  what: string,
): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (true) {
    const text = await scrape(http);
    if (ready(text)) return text;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * One sample's value in a Prometheus text exposition.
 *
 * @param text the exposition
 * @param name the metric
 * @param labels its labels, exactly as rendered (in declared order)
 * @returns the value, or undefined when there is no such sample
 */
export function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(",");
  const series = pairs ? `${name}{${pairs}}` : name;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}
