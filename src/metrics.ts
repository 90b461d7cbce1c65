/**
 * Operator metrics on `prom-client`: counters, gauges read when scraped, and
 * histograms, in one registry per runtime, rendered in the Prometheus text
 * exposition format (version 0.0.4) for `GET /metrics`.
 *
 * Label values must come from small fixed sets (a reason, a status, an
 * agent name, a pool): every distinct label set is a series kept for the
 * life of the process. Never put an id, a principal or anything secret in a
 * label.
 *
 * @example
 * ```ts
 * import { Metrics } from "./metrics.ts";
 * const metrics = new Metrics();
 * const dropped = metrics.counter("arcp_sessions_dropped_total", "Sessions dropped.", ["reason"]);
 * dropped.inc({ reason: "socket_gone" });
 * metrics.gauge("arcp_jobs_live", "Jobs running now.", () => 3);
 * await metrics.render(); // "# HELP arcp_sessions_dropped_total Sessions dropped.\n..."
 * ```
 *
 * @module
 */
import { Counter as PromCounter, Gauge, Histogram as PromHistogram, Registry } from "prom-client";

/** Label name → value of one series. */
export type Labels = Record<string, string>;

/** The content type of {@linkcode Metrics.render}'s output. */
export const METRICS_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;

/** A count that only goes up (events since the process started). */
export class Counter {
  #counter: PromCounter<string>;

  /**
   * Wraps a registered counter; {@linkcode Metrics.counter} makes one.
   *
   * @param counter the registered `prom-client` counter
   */
  constructor(counter: PromCounter<string>) {
    this.#counter = counter;
  }

  /**
   * Adds to the count of a label set.
   *
   * @param labels one value per declared label (none for an unlabelled counter)
   * @param by how much, at least 0 (default 1; 0 makes the series show up at 0)
   * @throws {Error} when `by` is negative
   */
  inc(labels: Labels = {}, by = 1): void {
    this.#counter.inc(labels, by);
  }
}

/** A distribution of observed values (durations, in seconds) in cumulative buckets. */
export class Histogram {
  #histogram: PromHistogram<string>;

  /**
   * Wraps a registered histogram; {@linkcode Metrics.histogram} makes one.
   *
   * @param histogram the registered `prom-client` histogram
   */
  constructor(histogram: PromHistogram<string>) {
    this.#histogram = histogram;
  }

  /**
   * Records one observation.
   *
   * @param value the value (seconds, for a duration)
   * @param labels one value per declared label
   */
  observe(value: number, labels: Labels = {}): void {
    this.#histogram.observe(labels, value);
  }
}

/** The registry of a runtime's metrics. */
export class Metrics {
  /**
   * The `prom-client` registry underneath, for an embedder's own metrics or
   * default collectors. Left out of the generated docs: its type is
   * `prom-client`'s `Registry`, documented by that package.
   *
   * @ignore
   */
  readonly registry: Registry = new Registry();

  /**
   * Declares a counter.
   *
   * @param name the metric name, ending in `_total` by convention
   * @param help one line saying what is counted
   * @param labelNames the labels each increment names
   * @returns the counter
   * @throws {Error} on a bad or already declared name
   */
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return new Counter(
      new PromCounter({ name, help, labelNames, registers: [this.registry] }),
    );
  }

  /**
   * Declares a gauge read when the metrics are rendered.
   *
   * @param name the metric name
   * @param help one line saying what is measured
   * @param read the current value, or one value per label set (those not returned vanish)
   * @param labelNames the labels of the label sets `read` returns
   * @throws {Error} on a bad or already declared name
   */
  gauge(
    name: string,
    help: string,
    read: () => number | Iterable<[Labels, number]>,
    labelNames: readonly string[] = [],
  ): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        const v = read();
        if (typeof v === "number") {
          this.set(v);
          return;
        }
        this.reset();
        for (const [labels, n] of v) this.set(labels, n);
      },
    });
  }

  /**
   * Declares a histogram.
   *
   * @param name the metric name, ending in the unit (`_seconds`)
   * @param help one line saying what is observed
   * @param buckets upper bounds of the buckets, ascending
   * @param labelNames the labels each observation names
   * @returns the histogram
   * @throws {Error} on a bad or already declared name
   */
  histogram(
    name: string,
    help: string,
    buckets: number[],
    labelNames: readonly string[] = [],
  ): Histogram {
    return new Histogram(
      new PromHistogram({ name, help, buckets, labelNames, registers: [this.registry] }),
    );
  }

  /**
   * Every metric in the Prometheus text format.
   *
   * @returns the exposition: `# HELP`, `# TYPE` and sample lines per metric
   */
  async render(): Promise<string> {
    return await this.registry.metrics();
  }
}
