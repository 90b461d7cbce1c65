/**
 * Figure 12: durable events end to end, beside the ceilings under them,
 * all measured in the same run.
 *
 * The runtime runs as a process of its own (`_events_child.ts`), so the
 * clients here do not share its event loop. Each case is measured with the
 * bench client (which decodes every envelope, as a real client does) and,
 * for one ticker, with a raw WebSocket client that only counts frames, so a
 * slow client cannot pass for a slow runtime. The ceilings: raw Deno KV
 * atomic commits of events of the same size, stored one value per event and
 * stored the way the runtime stores them, and a bare WebSocket on loopback.
 * CPU per event is reported for each process on the path: the runtime, the
 * sandbox processes of the jobs (those that ended in the measured window,
 * start-up included) and the bench clients.
 *
 * @module
 */
import { encodeEnvelope } from "../src/protocol/encode.ts";
import { RUN_FLAGS } from "../src/cli/flags.ts";
import { SEGMENT_CHARS, SEGMENT_ENTRIES } from "../src/store/large_value.ts";
import { heading, report, scaled } from "./_report.ts";
import { BenchClient, expectSuccess, fmt, type JobRun, ROOT, traceId } from "./_util.ts";

/** The sandboxes figure 12 compares. */
const SANDBOXES = ["worker", "process"] as const;

type SandboxKind = (typeof SANDBOXES)[number];

/** The targets, reported beside the figures. */
const TARGET_ONE = 30_000;
const TARGET_FIFTY = 25_000;

/** Idle time between 12d/12e's warm-up burst and the measured one (ms). */
const BURST_GAP_MS = 2_000;

/**
 * Events per commit of the raw KV ceilings of one ticker: the agent's event
 * window (`EVENT_WINDOW`) before it grew to 1,024, kept so the ceiling reads
 * the same across runs and branches.
 */
const WINDOW = 256;

/** A `job.event` as a ticker's envelopes look on the wire (and in KV). */
function tickerEnvelope(seq: number): string {
  return encodeEnvelope({
    type: "job.event",
    session_id: "sess_01JBENCHBENCHBENCHBENCHBENC",
    job_id: "job_01JBENCHBENCHBENCHBENCHBENC",
    trace_id: "0123456789abcdef0123456789abcdef",
    event_seq: seq,
    payload: {
      kind: "progress",
      ts: new Date().toISOString(),
      body: { current: seq, total: 20_000, units: "ticks" },
    },
  });
}

// ---- the far end: a child process ------------------------------------------

/** A `_events_child.ts` process. */
interface Child extends AsyncDisposable {
  /** Its WebSocket URL. */
  url: string;
  /** Its pid. */
  pid: number;
  /** KV commits it has made so far. */
  commits(): Promise<number>;
  /** CPU time it has used so far (ms, user + system, all its threads). */
  cpuMs(): Promise<number>;
  /** CPU time its main thread (the runtime's event loop) has used so far (ms). */
  mainCpuMs(): Promise<number>;
  /**
   * CPU time of its child processes so far (ms, user + system): the sandbox
   * processes, start-up included, those it has reaped and those still
   * running (recycled for their principal's next job).
   */
  childCpuMs(): Promise<number>;
}

/** The fields of `/proc/<pid>/stat` (or of `path`) after the command name (field 3 onwards). */
async function statFields(pid: number, path = `/proc/${pid}/stat`): Promise<string[]> {
  const out = await new Deno.Command("cat", { args: [path] }).output();
  return new TextDecoder().decode(out.stdout).split(") ")[1].split(" ");
}

/** This process's CPU time so far (ms, user + system): the bench clients'. */
async function selfCpuMs(): Promise<number> {
  const fields = await statFields(Deno.pid);
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Starts `_events_child.ts` in a mode and waits for its URL. */
async function startChild(args: string[]): Promise<Child> {
  const proc = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...RUN_FLAGS,
      "--config",
      `${ROOT}/deno.json`,
      `${ROOT}/bench/_events_child.ts`,
      ...args,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = proc.stdin.getWriter();
  const lines = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const nextLine = async (prefix: string): Promise<string> => {
    while (true) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.startsWith(prefix)) return line.slice(prefix.length);
        continue;
      }
      const { value, done } = await lines.read();
      if (done) throw new Error(`bench child ended before printing ${prefix}`);
      buffered += value;
    }
  };
  const url = await nextLine("URL ");
  return {
    url,
    pid: proc.pid,
    async commits() {
      await stdin.write(new TextEncoder().encode("stats\n"));
      return (JSON.parse(await nextLine("STATS ")) as { commits: number }).commits;
    },
    async cpuMs() {
      const fields = await statFields(proc.pid);
      // utime and stime, fields 14 and 15 of stat, in clock ticks of 10 ms.
      return (Number(fields[11]) + Number(fields[12])) * 10;
    },
    async mainCpuMs() {
      const fields = await statFields(proc.pid, `/proc/${proc.pid}/task/${proc.pid}/stat`);
      return (Number(fields[11]) + Number(fields[12])) * 10;
    },
    async childCpuMs() {
      const fields = await statFields(proc.pid);
      // cutime and cstime, fields 16 and 17: children it has waited for.
      let ticks = Number(fields[13]) + Number(fields[14]);
      // And the children alive now (ppid, field 4): their own time and their reaped children's.
      // Through cat, as Deno grants reading /proc only with every permission.
      const all = await new Deno.Command("sh", {
        args: ["-c", "cat /proc/[0-9]*/stat 2>/dev/null"],
      }).output();
      for (const line of new TextDecoder().decode(all.stdout).split("\n")) {
        const f = line.slice(line.lastIndexOf(") ") + 2).split(" ");
        if (f[1] !== String(proc.pid)) continue;
        ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      }
      return ticks * 10;
    },
    async [Symbol.asyncDispose]() {
      proc.kill("SIGTERM");
      await proc.status;
      await stdin.close().catch(() => {});
      await lines.cancel().catch(() => {});
    },
  };
}

// ---- ceilings --------------------------------------------------------------

/**
 * Events per second raw Deno KV commits, in atomic commits of `perCommit`
 * events spread over `logs` pairs of logs (a session log and a job history
 * each, as the runtime keeps them), each event in a value of its own or,
 * `shared`, the entries of one log in one commit sharing values as the
 * runtime stores them.
 */
async function rawKvRate(
  total: number,
  perCommit: number,
  logs: number,
  shared: boolean,
): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_bench_kv_" });
  const kv = await Deno.openKv(`${dir}/raw.kv`);
  try {
    const texts = Array.from({ length: perCommit }, (_, i) => tickerEnvelope(i + 1));
    const seqs = new Array<number>(logs).fill(0);
    const t0 = performance.now();
    for (let done = 0; done < total; done += perCommit) {
      const op = kv.atomic();
      // The commit's events, log by log: log j gets every logs-th event.
      for (let j = 0; j < logs; j++) {
        const mine = texts.filter((_, i) => i % logs === j);
        const put = (log: string, n: number, value: string | string[]) =>
          op.set(["v1", log, `log_${j}`, n], value, { expireIn: 86_400_000 });
        if (!shared) {
          for (const text of mine) {
            const n = ++seqs[j];
            put("slog", n, text);
            put("jlog", n, text);
          }
          continue;
        }
        for (let i = 0; i < mine.length;) {
          const value: string[] = [];
          let chars = 0;
          while (
            i < mine.length && value.length < SEGMENT_ENTRIES &&
            chars + mine[i].length <= SEGMENT_CHARS
          ) {
            chars += mine[i].length;
            value.push(mine[i++]);
          }
          seqs[j] += value.length;
          put("slog", seqs[j], value);
          put("jlog", seqs[j], value);
        }
      }
      const res = await op.commit();
      if (!res.ok) throw new Error("raw KV commit refused");
    }
    return total / ((performance.now() - t0) / 1000);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Opens a raw WebSocket and waits for it to open. */
async function openSocket(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
  });
  return ws;
}

/** Frames per second a bare WebSocket server sends over loopback to a client that counts them. */
async function rawWsSendRate(url: string, n: number, bytes: number): Promise<number> {
  const ws = await openSocket(url);
  const { promise, resolve } = Promise.withResolvers<number>();
  let got = 0;
  let t0 = 0;
  ws.onmessage = (m) => {
    if (m.data === "done") resolve(performance.now() - t0);
    else got++;
  };
  t0 = performance.now();
  ws.send(`send ${n} ${bytes}`);
  const ms = await promise;
  ws.close();
  if (got !== n) throw new Error(`raw send: ${got} of ${n} frames arrived`);
  return n / (ms / 1000);
}

/** Frames per second echoed by a bare WebSocket server, `window` frames in flight. */
async function rawWsEchoRate(
  url: string,
  n: number,
  frame: string,
  window: number,
): Promise<number> {
  const ws = await openSocket(url);
  const { promise, resolve } = Promise.withResolvers<void>();
  let sent = 0;
  let got = 0;
  ws.onmessage = () => {
    got++;
    if (sent < n) {
      ws.send(frame);
      sent++;
    }
    if (got === n) resolve();
  };
  const t0 = performance.now();
  for (; sent < Math.min(window, n); sent++) ws.send(frame);
  await promise;
  const ms = performance.now() - t0;
  ws.close();
  return n / (ms / 1000);
}

// ---- clients ---------------------------------------------------------------

/**
 * Runs one ticker with a raw WebSocket client that decodes only the
 * handshake and counts `job.event` frames by their text.
 *
 * @returns events received and milliseconds from submit to the result
 */
async function rawTickerRun(url: string, count: number): Promise<{ events: number; ms: number }> {
  const ws = await openSocket(url);
  const trace = traceId();
  const welcome = Promise.withResolvers<string>();
  const done = Promise.withResolvers<void>();
  let events = 0;
  let welcomed = false;
  ws.onmessage = (m) => {
    const text = m.data as string;
    if (!welcomed) {
      const env = JSON.parse(text);
      if (env.type === "session.welcome") {
        welcomed = true;
        welcome.resolve(env.session_id);
      } else welcome.reject(new Error(`hello refused: ${text}`));
      return;
    }
    if (!text.includes(trace)) return;
    if (text.includes(`"type":"job.event"`)) events++;
    else if (text.includes(`"type":"job.result"`)) done.resolve();
    else if (text.includes(`"type":"job.error"`)) done.reject(new Error(text));
  };
  ws.send(JSON.stringify({
    arcp: "1.1",
    id: "raw-hello",
    type: "session.hello",
    payload: {
      client: { name: "arcp-bench-raw", version: "0" },
      auth: { scheme: "bearer", token: "alice-token" },
      capabilities: { encodings: ["json"], features: ["progress"] },
    },
  }));
  const sessionId = await welcome.promise;
  const t0 = performance.now();
  ws.send(JSON.stringify({
    arcp: "1.1",
    id: "raw-submit",
    type: "job.submit",
    session_id: sessionId,
    trace_id: trace,
    payload: { agent: "ticker", input: { count, interval_ms: 0 } },
  }));
  await done.promise;
  const ms = performance.now() - t0;
  ws.close();
  return { events, ms };
}

/** What one measured run of tickers cost the runtime, its sandbox processes and the clients. */
interface TickerRun {
  events: number;
  secs: number;
  commits: number;
  cpuMs: number;
  /** Of which the runtime's main thread (its event loop); the rest is workers, GC, I/O threads. */
  mainCpuMs: number;
  /** From the first submit until the last job's first event from its agent arrived (s): the jobs' start. */
  startSecs: number;
  /** The same, for the median job (s). */
  medianStartSecs: number;
  /** CPU of the sandbox processes that ended meanwhile (their jobs'), start-up included. */
  sandboxCpuMs: number;
  /** CPU of this process, where the bench clients run. */
  clientCpuMs: number;
}

/** How long to wait after the last result for the jobs' sandbox processes to be reaped (ms). */
const REAP_MS = 300;

/** Runs one ticker on each client at once, measuring the runtime around it. */
async function tickers(child: Child, clients: BenchClient[], count: number): Promise<TickerRun> {
  const [commits0, cpu0, main0] = [
    await child.commits(),
    await child.cpuMs(),
    await child.mainCpuMs(),
  ];
  const [sandbox0, client0] = [await child.childCpuMs(), await selfCpuMs()];
  const t0 = performance.now();
  const runs = await Promise.all(clients.map((c) => c.run("ticker", { count, interval_ms: 0 })));
  const secs = (performance.now() - t0) / 1000;
  const [commits1, cpu1, main1, client1] = [
    await child.commits(),
    await child.cpuMs(),
    await child.mainCpuMs(),
    await selfCpuMs(),
  ];
  await new Promise((r) => setTimeout(r, REAP_MS));
  const sandbox1 = await child.childCpuMs();
  const starts = runs.map((r) => (r.firstAgentEventAt ?? t0) - t0);
  return {
    events: runs.reduce((n: number, r: JobRun) => n + r.events, 0),
    secs,
    commits: commits1 - commits0,
    cpuMs: cpu1 - cpu0,
    mainCpuMs: main1 - main0,
    startSecs: Math.max(...starts) / 1000,
    medianStartSecs: starts.toSorted((a, b) => a - b)[Math.floor(starts.length / 2)] / 1000,
    sandboxCpuMs: sandbox1 - sandbox0,
    clientCpuMs: client1 - client0,
  };
}

// ---- the figure --------------------------------------------------------------

/**
 * Figure 12: durable events/s, one ticker and 50 sessions × ticker, both
 * sandboxes, beside raw KV and raw WebSocket ceilings of the same run.
 */
export async function figure12(): Promise<void> {
  // `ARCP_FIG12_ONLY=d,e` runs just those parts (quick A/B runs of the 50 sessions); the
  // ceilings they are divided by are measured whatever the parts.
  const only = Deno.env.get("ARCP_FIG12_ONLY")?.split(",");
  const part = (name: string) => !only || only.includes(name);
  const one = scaled(20_000, 500);
  const fifty = { sessions: 50, count: scaled(1_000, 50) };
  const frame = tickerEnvelope(12_345);

  heading(`12a. ceilings: raw KV commits and a bare WebSocket, events of ${frame.length} bytes`);
  const figureC = "12a. ceilings";
  const kvShared = await rawKvRate(one, WINDOW, 1, true);
  const kvFifty = await rawKvRate(fifty.sessions * fifty.count, 1000, fifty.sessions, true);
  if (part("a")) await ceilingRows(one, kvShared, kvFifty, fifty);
  let wsSend = 0;
  if (part("a") || part("b") || part("c")) {
    await using ws = await startChild(["ws"]);
    await rawWsSendRate(ws.url, 1000, frame.length); // warm-up
    wsSend = await rawWsSendRate(ws.url, one, frame.length);
    if (part("a")) {
      report({
        figure: figureC,
        metric: "raw WebSocket send, loopback (Deno.serve → client)",
        value: fmt(wsSend, 0),
        unit: "frames/s",
        notes: `${one} frames of ${frame.length} bytes, a client that counts them`,
      });
      const wsEcho = await rawWsEchoRate(ws.url, one, frame, WINDOW);
      report({
        figure: figureC,
        metric: `raw WebSocket echo, loopback, ${WINDOW} in flight`,
        value: fmt(wsEcho, 0),
        unit: "frames/s",
        notes: `${one} round trips`,
      });
    }
  }

  for (const sandbox of SANDBOXES) {
    const key = sandbox === "worker" ? "b" : "c";
    if (part(key)) await oneTicker(sandbox, key, one, kvShared, wsSend);
  }
  for (const sandbox of SANDBOXES) {
    const key = sandbox === "worker" ? "d" : "e";
    if (part(key)) await fiftyTickers(sandbox, key, fifty, kvFifty);
  }
}

/** The raw KV rows of 12a. */
async function ceilingRows(
  one: number,
  kvShared: number,
  kvFifty: number,
  fifty: { sessions: number; count: number },
): Promise<void> {
  const figureC = "12a. ceilings";
  const kvPerValue = await rawKvRate(one, WINDOW, 1, false);
  report({
    figure: figureC,
    metric: `raw KV, one value per event, ${WINDOW} events per commit`,
    value: fmt(kvPerValue, 0),
    unit: "events/s",
    notes: `${one} events, each in a session log and a job history (2 values)`,
  });
  report({
    figure: figureC,
    metric: `raw KV, one commit's entries share values, ${WINDOW} per commit`,
    value: fmt(kvShared, 0),
    unit: "events/s",
    notes: "as the runtime stores them: session log and job history, one value each per commit",
  });
  report({
    figure: figureC,
    metric: `raw KV, ${fifty.sessions} logs interleaved, shared values, 1000 per commit`,
    value: fmt(kvFifty, 0),
    unit: "events/s",
    notes: `${fifty.sessions * fifty.count} events`,
  });
}

/** Figures 12b and 12c: one ticker in a sandbox. */
async function oneTicker(
  sandbox: SandboxKind,
  key: string,
  one: number,
  kvShared: number,
  wsSend: number,
): Promise<void> {
  {
    heading(
      `12${key}. one ticker of ${one} events, sandbox "${sandbox}", runtime in its own process`,
    );
    await using child = await startChild(["runtime", sandbox]);
    const figure = `12${key}. one ticker (${sandbox})`;
    const client = await BenchClient.connect(child.url);
    await client.run("ticker", { count: 200, interval_ms: 0 }); // compile and JIT
    const run = await tickers(child, [client], one);
    await client.close();
    const rate = run.events / run.secs;
    await rawTickerRun(child.url, 200);
    const raw = await rawTickerRun(child.url, one);
    const rawRate = raw.events / (raw.ms / 1000);
    report({
      figure,
      metric: "events/s end to end, bench client (decodes each envelope)",
      value: fmt(rate, 0),
      unit: "events/s",
      notes: `${run.events} events in ${fmt(run.secs)} s, submit → result; target ${
        fmt(TARGET_ONE, 0)
      }`,
    });
    report({
      figure,
      metric: "events/s end to end, raw client (counts frames)",
      value: fmt(rawRate, 0),
      unit: "events/s",
      notes: `${raw.events} events in ${fmt(raw.ms / 1000)} s`,
    });
    report({
      figure,
      metric: "envelopes per KV commit",
      value: fmt((run.events + 1) / Math.max(1, run.commits), 1),
      unit: "envelopes/commit",
      notes: `${run.commits} commits`,
    });
    report({
      figure,
      metric: "runtime process CPU per event",
      value: fmt((run.cpuMs * 1000) / run.events, 1),
      unit: "µs/event",
      notes: sandbox === "worker"
        ? "user + system, every thread of the runtime process (the agent's worker too)"
        : "user + system of the runtime process; the sandbox process is not counted",
    });
    report({
      figure,
      metric: "CPU per event: sandbox process / bench client",
      value: `${fmt((run.sandboxCpuMs * 1000) / run.events, 1)} / ${
        fmt((run.clientCpuMs * 1000) / run.events, 1)
      }`,
      unit: "µs/event",
      notes: sandbox === "worker"
        ? "no sandbox process: the worker runs in the runtime process"
        : "the job's sandbox process, start-up included; the client decodes every envelope",
    });
    report({
      figure,
      metric: "÷ raw KV ceiling (shared values) / ÷ raw WebSocket send",
      value: `${fmt(rawRate / kvShared, 2)}× / ${fmt(rawRate / wsSend, 2)}×`,
      unit: "",
      notes: "raw client's rate over the ceilings of 12a",
    });
  }
}

/**
 * A short ticker, submitted again while the sandbox refuses it as busy: 50
 * at once on a fresh runtime may be refused by its admission control (a
 * retryable `sandbox_busy`), which is what a client then does.
 */
async function warmUp(client: BenchClient): Promise<void> {
  while (true) {
    const run = await client.submit("ticker", { count: 20, interval_ms: 0 }).done;
    const payload = run.terminal?.payload;
    if (run.terminal?.type === "job.error" && payload?.details?.cap === "sandbox_busy") {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    expectSuccess(run);
    return;
  }
}

/** Figures 12d and 12e: 50 sessions, a ticker each, in a sandbox. */
async function fiftyTickers(
  sandbox: SandboxKind,
  key: string,
  fifty: { sessions: number; count: number },
  kvFifty: number,
): Promise<void> {
  {
    const { sessions, count } = fifty;
    heading(`12${key}. ${sessions} sessions × ticker of ${count}, sandbox "${sandbox}"`);
    await using child = await startChild(["runtime", sandbox]);
    const figure = `12${key}. ${sessions} sessions (${sandbox})`;
    const clients = await Promise.all(
      Array.from({ length: sessions }, () => BenchClient.connect(child.url)),
    );
    await Promise.all(clients.map((c) => warmUp(c)));
    // Bursts apart: the warm pool refills in the idle time between them.
    await new Promise((r) => setTimeout(r, BURST_GAP_MS));
    const run = await tickers(child, clients, count);
    await Promise.all(clients.map((c) => c.close()));
    report({
      figure,
      metric: "events/s delivered, all sessions together",
      value: fmt(run.events / run.secs, 0),
      unit: "events/s",
      notes: `${run.events} events in ${fmt(run.secs)} s, first submit → last result, ${
        BURST_GAP_MS / 1000
      } s after a warm-up burst; target ${fmt(TARGET_FIFTY, 0)}`,
    });
    report({
      figure,
      metric: "envelopes per KV commit",
      value: fmt((run.events + sessions) / Math.max(1, run.commits), 1),
      unit: "envelopes/commit",
      notes: `${run.commits} commits`,
    });
    report({
      figure,
      metric: "until the median / the last session's first ticker event",
      value: `${fmt(run.medianStartSecs)} / ${fmt(run.startSecs)}`,
      unit: "s",
      notes:
        `of ${fmt(run.secs)} s: the jobs' start (a job waits for a worker when none is ready), ` +
        "the agent's first event, not the runtime's running status before it",
    });
    report({
      figure,
      metric: "runtime process CPU per event",
      value: fmt((run.cpuMs * 1000) / run.events, 1),
      unit: "µs/event",
      notes: sandbox === "worker"
        ? "every thread of the runtime process"
        : "sandbox processes not counted",
    });
    report({
      figure,
      metric: "of which the runtime's main thread / its other threads",
      value: `${fmt((run.mainCpuMs * 1000) / run.events, 1)} / ${
        fmt(((run.cpuMs - run.mainCpuMs) * 1000) / run.events, 1)
      }`,
      unit: "µs/event",
      notes: sandbox === "worker"
        ? "other threads: the agents' workers, GC and I/O threads"
        : "other threads: GC and I/O threads",
    });
    report({
      figure,
      metric: "CPU per event: sandbox processes / bench clients",
      value: `${fmt((run.sandboxCpuMs * 1000) / run.events, 1)} / ${
        fmt((run.clientCpuMs * 1000) / run.events, 1)
      }`,
      unit: "µs/event",
      notes: sandbox === "worker"
        ? "no sandbox processes: workers run in the runtime process"
        : `${sessions} sandbox processes, start-up included`,
    });
    report({
      figure,
      metric: "÷ raw KV ceiling (50 logs)",
      value: `${fmt(run.events / run.secs / kvFifty, 2)}×`,
      unit: "",
      notes: "over the third ceiling of 12a",
    });
  }
}
