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

/** A key equal for label sets with the same names and values in the same order. */
function labelKey(labels: Labels): string {
  let key = "";
  for (const name in labels) key += name + "\u0001" + labels[name] + "\u0000";
  return key;
}

/**
 * The series `prom-client` keeps for each label set, found once per label
 * set so that later updates skip its label checks and hashing (a measurable
 * part of a short job's cost: a few updates per job). A series is looked
 * for in the metric's series map after an update through `prom-client`
 * itself (which checks the labels); when the metric is reset (a new map)
 * or a series is not where expected, updates go through `prom-client` again.
 */
class SeriesCache<S> {
  #metric: { hashMap?: Record<string, S & { labels?: unknown }> };
  /** By label key: the series and its key in the metric's series map. */
  #series = new Map<string, [S, string]>();

  constructor(metric: unknown) {
    this.#metric = metric as { hashMap?: Record<string, S & { labels?: unknown }> };
  }

  /** The series of a label set, when found after an earlier update and still the metric's. */
  get(key: string): S | undefined {
    const found = this.#series.get(key);
    if (found === undefined) return undefined;
    // Reset or removed since: prom-client makes the series again.
    if (this.#metric.hashMap?.[found[1]] !== found[0]) {
      this.#series.delete(key);
      return undefined;
    }
    return found[0];
  }

  /** Finds the series `prom-client` has just updated for `labels` (the same object). */
  learn(key: string, labels: Labels, valid: (s: S) => boolean): void {
    const map = this.#metric.hashMap;
    if (map === undefined) return;
    // No labels: the one series prom-client keys by "" (made when declared, for a counter).
    const hash = key === "" ? "" : Object.keys(map).find((k) => map[k].labels === labels);
    const found = hash === undefined ? undefined : map[hash];
    if (hash !== undefined && found && valid(found)) this.#series.set(key, [found, hash]);
  }
}

/** A `prom-client` counter's series. */
interface CounterSeries {
  value: number;
}

/** A count that only goes up (events since the process started). */
export class Counter {
  #counter: PromCounter<string>;
  #cache: SeriesCache<CounterSeries>;

  /**
   * Wraps a registered counter; {@linkcode Metrics.counter} makes one.
   *
   * @param counter the registered `prom-client` counter
   */
  constructor(counter: PromCounter<string>) {
    this.#counter = counter;
    this.#cache = new SeriesCache(counter);
  }

  /**
   * Adds to the count of a label set.
   *
   * @param labels one value per declared label (none for an unlabelled counter)
   * @param by how much, at least 0 (default 1; 0 makes the series show up at 0)
   * @throws {Error} when `by` is negative
   */
  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    const series = this.#cache.get(key);
    if (series && by >= 0 && Number.isFinite(by)) {
      series.value += by;
      return;
    }
    // First sight of the label set, or a value prom-client refuses: it checks.
    const own = { ...labels };
    this.#counter.inc(own, by);
    this.#cache.learn(key, own, (s) => typeof s.value === "number");
  }
}

/** A `prom-client` histogram's series. */
interface HistogramSeries {
  sum: number;
  count: number;
  bucketValues: Record<string, number>;
}

/** A distribution of observed values (durations, in seconds) in cumulative buckets. */
export class Histogram {
  #histogram: PromHistogram<string>;
  #cache: SeriesCache<HistogramSeries>;
  #bounds: readonly number[];
  #boundKeys: readonly string[];

  /**
   * Wraps a registered histogram; {@linkcode Metrics.histogram} makes one.
   *
   * @param histogram the registered `prom-client` histogram
   * @param buckets its buckets' upper bounds, ascending, as it was declared with
   */
  constructor(histogram: PromHistogram<string>, buckets: readonly number[] = []) {
    this.#histogram = histogram;
    this.#cache = new SeriesCache(histogram);
    this.#bounds = buckets;
    this.#boundKeys = buckets.map(String);
  }

  /**
   * Records one observation.
   *
   * @param value the value (seconds, for a duration)
   * @param labels one value per declared label
   */
  observe(value: number, labels: Labels = {}): void {
    const key = labelKey(labels);
    const series = this.#cache.get(key);
    if (series && Number.isFinite(value)) {
      series.sum += value;
      series.count += 1;
      // The bucket prom-client counts it in: the first bound at or above it.
      const bounds = this.#bounds;
      for (let i = 0; i < bounds.length; i++) {
        if (value <= bounds[i]) {
          // By the bound's text, spelled once: a number key is spelled on every use.
          series.bucketValues[this.#boundKeys[i]] += 1;
          break;
        }
      }
      return;
    }
    // First sight of the label set, or a value prom-client refuses: it checks.
    const own = { ...labels };
    this.#histogram.observe(own, value);
    this.#cache.learn(
      key,
      own,
      (s) =>
        typeof s.sum === "number" && typeof s.count === "number" && s.bucketValues !== null &&
        typeof s.bucketValues === "object" &&
        this.#boundKeys.every((b) => typeof s.bucketValues[b] === "number"),
    );
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
      [...buckets],
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
