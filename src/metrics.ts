/**
 * Operator metrics: counters and gauges in one registry, rendered in the
 * Prometheus text exposition format (version 0.0.4) for `GET /metrics`.
 *
 * Label values must come from small fixed sets (a reason, a status, an
 * agent name): every distinct label set is a series kept for the life of
 * the process. Never put an id, a principal or anything secret in a label.
 *
 * @example
 * ```ts
 * import { Metrics } from "./metrics.ts";
 * const metrics = new Metrics();
 * const dropped = metrics.counter("arcp_sessions_dropped_total", "Sessions dropped.", ["reason"]);
 * dropped.inc({ reason: "socket_gone" });
 * metrics.gauge("arcp_jobs_live", "Jobs running now.", () => 3);
 * metrics.render(); // "# HELP arcp_sessions_dropped_total Sessions dropped.\n..."
 * ```
 *
 * @module
 */

/** Label name → value of one series. */
export type Labels = Record<string, string>;

/** The content type of {@linkcode Metrics.render}'s output. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** One metric family as the registry renders it. */
interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge";
  samples(): Iterable<[Labels, number]>;
}

/** A value per label set, in first-seen order. */
class Series {
  #labelNames: readonly string[];
  #values = new Map<string, [Labels, number]>();

  constructor(labelNames: readonly string[]) {
    this.#labelNames = labelNames;
  }

  /** The entry of a label set, made when missing; refuses names the metric was not declared with. */
  entry(labels: Labels): [Labels, number] {
    const key = this.#key(labels);
    let entry = this.#values.get(key);
    if (!entry) {
      entry = [Object.fromEntries(this.#labelNames.map((n) => [n, labels[n]])), 0];
      this.#values.set(key, entry);
    }
    return entry;
  }

  /** The value of a label set, 0 when it has none. */
  get(labels: Labels): number {
    return this.#values.get(this.#key(labels))?.[1] ?? 0;
  }

  #key(labels: Labels): string {
    const names = Object.keys(labels);
    if (
      names.length !== this.#labelNames.length || names.some((n) => !this.#labelNames.includes(n))
    ) {
      throw new TypeError(
        `labels ${JSON.stringify(names)} do not match ${JSON.stringify(this.#labelNames)}`,
      );
    }
    return JSON.stringify(this.#labelNames.map((n) => labels[n]));
  }

  samples(): Iterable<[Labels, number]> {
    return this.#values.values();
  }
}

/** A count that only goes up (events since the process started). */
export class Counter {
  #series: Series;

  /**
   * A counter with no samples yet.
   *
   * @param labelNames the labels every increment names
   */
  constructor(labelNames: readonly string[]) {
    this.#series = new Series(labelNames);
  }

  /**
   * Adds to the count of a label set.
   *
   * @param labels one value per declared label (none for an unlabelled counter)
   * @param by how much, at least 0 (default 1; 0 makes the series show up at 0)
   */
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new RangeError(`a counter cannot go down (by ${by})`);
    this.#series.entry(labels)[1] += by;
  }

  /**
   * The count of a label set.
   *
   * @param labels the label set
   * @returns its count, 0 when never incremented
   */
  value(labels: Labels = {}): number {
    return this.#series.get(labels);
  }

  /**
   * Every label set counted so far.
   *
   * @returns each label set with its count
   */
  samples(): Iterable<[Labels, number]> {
    return this.#series.samples();
  }
}

/** The registry of a runtime's metrics. */
export class Metrics {
  #families = new Map<string, Family>();

  /**
   * Declares a counter.
   *
   * @param name the metric name, ending in `_total` by convention
   * @param help one line saying what is counted
   * @param labelNames the labels each increment names
   * @returns the counter
   * @throws {TypeError} on a bad or already declared name
   */
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    for (const l of labelNames) if (!LABEL.test(l)) throw new TypeError(`bad label name ${l}`);
    const counter = new Counter(labelNames);
    this.#add({ name, help, type: "counter", samples: () => counter.samples() });
    return counter;
  }

  /**
   * Declares a gauge read when the metrics are rendered.
   *
   * @param name the metric name
   * @param help one line saying what is measured
   * @param read the current value, or one value per label set
   * @throws {TypeError} on a bad or already declared name
   */
  gauge(name: string, help: string, read: () => number | Iterable<[Labels, number]>): void {
    this.#add({
      name,
      help,
      type: "gauge",
      samples: () => {
        const v = read();
        return typeof v === "number" ? [[{}, v]] : v;
      },
    });
  }

  /**
   * Every metric in the Prometheus text format.
   *
   * @returns the exposition, one `# HELP`, `# TYPE` and sample lines per metric
   */
  render(): string {
    const lines: string[] = [];
    for (const f of this.#families.values()) {
      lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
      for (const [labels, value] of f.samples()) {
        lines.push(`${f.name}${renderLabels(labels)} ${renderValue(value)}`);
      }
    }
    return lines.join("\n") + "\n";
  }

  #add(family: Family): void {
    if (!NAME.test(family.name)) throw new TypeError(`bad metric name ${family.name}`);
    if (this.#families.has(family.name)) {
      throw new TypeError(`metric ${family.name} is already declared`);
    }
    this.#families.set(family.name, family);
  }
}

function renderLabels(labels: Labels): string {
  const pairs = Object.entries(labels);
  if (pairs.length === 0) return "";
  return `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

function renderValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function escapeLabel(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function escapeHelp(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}
