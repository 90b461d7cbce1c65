/**
 * Figure 15: the server's resident set with 10 clients that submit a
 * full-speed ticker and never read, beside its idle value and beside 10
 * clients that read the same tickers (the tickers' own cost), behind the
 * connection gate and behind `Deno.serve` alone. Each run is a fresh
 * runtime process ({@linkcode ./slow_reader_probe.ts}), so what is measured
 * is the server's alone.
 *
 * @module
 */
import { RUN_FLAGS } from "../src/cli/flags.ts";
import { RawWs } from "../testing/raw_ws.ts";
import { heading, report, scaled } from "./_report.ts";
import { BenchClient, fmt, ROOT } from "./_util.ts";
import type { ProbeMemory, ProbeUrls } from "./slow_reader_probe.ts";

const CLIENTS = 10;
/**
 * A ticker that emits as fast as the runtime takes events, under the default
 * cap of 100,000 events per job (a full window may see it end).
 */
const TICKER = { count: 99_000, interval_ms: 0 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A runtime process of figure 15, asked for its memory over a pipe. */
class Probe {
  urls: ProbeUrls = { url: "", http: "" };
  #child: Deno.ChildProcess;
  #lines: ReadableStreamDefaultReader<string>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #buf = "";

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#writer = child.stdin.getWriter();
  }

  static async start(serve: "gated" | "direct"): Promise<Probe> {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...RUN_FLAGS, `${ROOT}/bench/slow_reader_probe.ts`, "--serve", serve],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const probe = new Probe(child);
    probe.urls = JSON.parse(await probe.#line()) as ProbeUrls;
    return probe;
  }

  async #line(): Promise<string> {
    while (!this.#buf.includes("\n")) {
      const { value, done } = await this.#lines.read();
      if (done) throw new Error("the probe exited");
      this.#buf += value;
    }
    const nl = this.#buf.indexOf("\n");
    const line = this.#buf.slice(0, nl);
    this.#buf = this.#buf.slice(nl + 1);
    return line;
  }

  async memory(): Promise<ProbeMemory> {
    await this.#writer.write(new TextEncoder().encode("\n"));
    return JSON.parse(await this.#line()) as ProbeMemory;
  }

  /** Ends stdin (the probe closes its runtime and exits); kills it if it lingers. */
  async stop(): Promise<void> {
    await this.#writer.close().catch(() => {});
    const killer = setTimeout(() => this.#child.kill("SIGKILL"), 15_000);
    await this.#child.status;
    clearTimeout(killer);
    await this.#lines.cancel().catch(() => {});
  }
}

/** What one run measured (MiB). */
interface Run {
  idle: ProbeMemory;
  peak: ProbeMemory;
  after: ProbeMemory;
  /** Connections open through the gate when the window ended. */
  open?: number;
  /** How long the clients ran (s). */
  seconds: number;
}

/** The idle value: the lowest of a few samples, after a warm-up ticker and a pause. */
async function idleMemory(probe: Probe): Promise<ProbeMemory> {
  const warm = await BenchClient.connect(probe.urls.url);
  await warm.run("ticker", { count: 1000, interval_ms: 0 });
  await warm.close();
  await sleep(2000);
  let low = await probe.memory();
  for (let i = 0; i < 4; i++) {
    await sleep(250);
    const m = await probe.memory();
    if (m.rss < low.rss) low = m;
  }
  return low;
}

/** How long one run's clients run: at least `min` s; past it, until `done` or `max` s. */
interface Window {
  min: number;
  max: number;
  done: (m: ProbeMemory) => boolean;
}

/**
 * One fresh runtime: its idle value, its peak while `CLIENTS` clients run a
 * ticker each (reading or not) for the window, and its value 5 s after they left.
 */
async function measure(serve: "gated" | "direct", read: boolean, window: Window): Promise<Run> {
  const probe = await Probe.start(serve);
  try {
    const idle = await idleMemory(probe);
    const leave: Array<() => unknown> = [];
    for (let i = 0; i < CLIENTS; i++) {
      if (read) {
        const c = await BenchClient.connect(probe.urls.url);
        c.submit("ticker", TICKER);
        leave.push(() => c.close());
      } else {
        const raw = await RawWs.open(probe.urls.url);
        const welcome = await raw.hello(["progress"]);
        await raw.send({
          type: "job.submit",
          session_id: welcome.session_id,
          payload: { agent: "ticker", input: TICKER },
        });
        leave.push(() => raw.close());
      }
    }
    const t0 = performance.now();
    const elapsed = () => (performance.now() - t0) / 1000;
    let last = await probe.memory();
    let peak = last;
    while (elapsed() < window.min || (elapsed() < window.max && !window.done(last))) {
      await sleep(500);
      last = await probe.memory();
      if (last.rss > peak.rss) peak = last;
    }
    const seconds = elapsed();
    await Promise.all(leave.map((f) => f()));
    await sleep(5000);
    return { idle, peak, after: await probe.memory(), open: last.connections, seconds };
  } finally {
    await probe.stop();
  }
}

/** Figure 15: RSS with 10 non-reading clients vs idle, gated and direct. */
export async function figure15(): Promise<void> {
  // Without the gate a non-reader fills ~4 MiB of kernel buffer, pauses, is closed by the 30 s
  // stall timeout and 5 s later dropped (a close frame behind the socket's window): 90 s
  // covers it. Through the gate the kernel holds ~8 MiB on two hops first, which at these
  // tickers' rate takes 40 s or more: that run lasts until the gate has dropped every
  // non-reader (at most twice as long). The readers run as long as the non-readers did.
  const min = scaled(90, 15);
  for (
    const [key, serve, what] of [
      ["a", "gated", "behind the connection gate (arcp serve)"],
      ["b", "direct", "behind Deno.serve alone"],
    ] as const
  ) {
    heading(`15${key}. server RSS, ${CLIENTS} clients that never read, ${what}`);
    const stuck = await measure(serve, false, {
      min,
      max: serve === "gated" ? 2 * min : min,
      done: (m) => m.connections === 0,
    });
    const readers = await measure(serve, true, {
      min: stuck.seconds,
      max: stuck.seconds,
      done: () => true,
    });
    const figure = `15${key}. RSS under non-readers (${serve})`;
    const tickers = `${CLIENTS} full-speed tickers, peak over ${fmt(stuck.seconds, 0)} s`;
    const over = (r: Run) => r.peak.rss - r.idle.rss;
    report({
      figure,
      metric: "server RSS idle (fresh process, after a warm-up job)",
      value: fmt(stuck.idle.rss, 0),
      unit: "MiB",
      notes: `reading run's idle: ${fmt(readers.idle.rss, 0)} MiB`,
    });
    report({
      figure,
      metric: `RSS, ${CLIENTS} clients that read`,
      value: fmt(readers.peak.rss, 0),
      unit: "MiB",
      notes: `+${fmt(over(readers), 0)} MiB over idle: the tickers' own cost; ${tickers}; ` +
        `V8 heap ${fmt(readers.peak.heapUsed, 0)}/${fmt(readers.peak.heapTotal, 0)} MiB`,
    });
    report({
      figure,
      metric: `RSS, ${CLIENTS} clients that never read`,
      value: fmt(stuck.peak.rss, 0),
      unit: "MiB",
      notes: `+${fmt(over(stuck), 0)} MiB over idle; ${tickers}; ` +
        `V8 heap ${fmt(stuck.peak.heapUsed, 0)}/${fmt(stuck.peak.heapTotal, 0)} MiB` +
        (stuck.open === undefined
          ? ""
          : `; ${CLIENTS - stuck.open} of ${CLIENTS} dropped by the gate by then`),
    });
    report({
      figure,
      metric: "non-readers' own cost (their growth − the readers')",
      value: fmt(over(stuck) - over(readers), 0),
      unit: "MiB",
      notes: "issue 14's ceiling: 50 MiB for 10 non-readers",
    });
    report({
      figure,
      metric: "RSS 5 s after the non-readers left",
      value: fmt(stuck.after.rss, 0),
      unit: "MiB",
      notes: "5 s after the clients closed their connections",
    });
  }
}
