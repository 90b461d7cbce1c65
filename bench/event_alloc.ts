/**
 * Where the runtime's main isolate allocates under agent events: `arcp serve`
 * of a checkout with V8's inspector on, rounds of tickers (`sessions` at
 * once, `count` events each) after one warm-up round, and V8's sampling heap
 * profiler over them, counting objects a scavenge or a full GC collected as
 * well as those still alive, so the census is of every byte allocated, not
 * of what was kept. Prints the bytes per event sampled in all, by the
 * function that allocated them (self) and by the functions under which they
 * were allocated (inclusive), and writes the profile (`.heapprofile`, for
 * Chrome's DevTools) if asked. A function V8 inlined may have its bytes
 * counted in its caller: compare totals, and read the split as a guide.
 * Reports; asserts nothing. See bench/RESULTS.md for the census it gave.
 *
 * ```sh
 * # this checkout: 50 sessions × ticker of 1,000 in sandbox processes, 3 rounds
 * deno run -A --unstable-kv --unstable-worker-options bench/event_alloc.ts
 * # the baseline checkout, in-process workers, keeping the profile
 * deno run -A --unstable-kv --unstable-worker-options bench/event_alloc.ts \
 *   --root /work/wt/base --sandbox worker --out /tmp/base.heapprofile
 * ```
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { BENCH_TOKENS, BenchClient, type JobRun, ROOT } from "./_util.ts";
import { RUN_FLAGS } from "../src/cli/flags.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string" },
    sandbox: { type: "string" },
    sessions: { type: "string" },
    count: { type: "string" },
    rounds: { type: "string" },
    interval: { type: "string" },
    out: { type: "string" },
  },
});
const root = values.root ?? ROOT;
const sandbox = values.sandbox === "worker" ? "worker" : "process";
const sessions = Number(values.sessions ?? 50);
const count = Number(values.count ?? 1000);
const rounds = Number(values.rounds ?? 3);
/** Mean bytes between samples: small enough that a run of 100,000 events samples each site often. */
const interval = Number(values.interval ?? 256);

/** A node of V8's sampling heap profile. */
interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

/** The inspector's port, picked at random so runs beside each other rarely collide. */
const inspectPort = 9300 + Math.floor(Math.random() * 500);
const dir = await Deno.makeTempDir({ prefix: "arcp_bench_" });
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    `--inspect=127.0.0.1:${inspectPort}`,
    ...RUN_FLAGS,
    `${root}/src/cli/main.ts`,
    "serve",
    "--port",
    "0",
    "--kv",
    `${dir}/arcp.kv`,
    "--sandbox",
    sandbox,
    ...Object.entries(BENCH_TOKENS).flatMap(([t, p]) => ["--token", `${t}=${p}`]),
  ],
  stdout: "piped",
  stderr: "piped",
}).spawn();
let out = "";
const pumps = [server.stdout, server.stderr].map(async (stream) => {
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) out += chunk;
});

/** One ticker of `count` events. */
function ticker(client: BenchClient): Promise<JobRun> {
  return client.run("ticker", { count, interval_ms: 0 });
}

/** Key of a profile node: its function and where it is. */
function site(n: ProfileNode): string {
  const f = n.callFrame;
  const url = f.url.startsWith(`file://${root}/`) ? f.url.slice(root.length + 8) : f.url;
  return `${f.functionName || "(anonymous)"} ${url}:${f.lineNumber + 1}`;
}

try {
  let url: string | undefined;
  const deadline = Date.now() + 30_000;
  while (!(url = out.match(/listening on (wss?:\/\/\S+\/arcp)/)?.[1])) {
    if (Date.now() > deadline) throw new Error(`arcp serve did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const targets = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json();
  const inspector = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((r) => inspector.onopen = r);
  let nextId = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  inspector.onmessage = (e) => {
    const m = JSON.parse(e.data);
    waiting.get(m.id)?.(m.result);
    waiting.delete(m.id);
  };
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve) => {
      const id = ++nextId;
      waiting.set(id, resolve);
      inspector.send(JSON.stringify({ id, method, params }));
    });
  const clients = await Promise.all(
    Array.from({ length: sessions }, () => BenchClient.connect(url!)),
  );
  // Compile, JIT and warm the pool first.
  await Promise.all(clients.map(ticker));
  await call("HeapProfiler.enable");
  await call("HeapProfiler.startSampling", {
    samplingInterval: interval,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  let events = 0;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) {
    events += (await Promise.all(clients.map(ticker))).reduce((n, r) => n + r.events, 0);
  }
  const secs = (performance.now() - t0) / 1000;
  const { profile } = await call("HeapProfiler.stopSampling") as { profile: { head: ProfileNode } };
  if (values.out) await Deno.writeTextFile(values.out, JSON.stringify(profile));
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  const walk = (n: ProfileNode, stack: Set<string>): number => {
    const key = site(n);
    self.set(key, (self.get(key) ?? 0) + n.selfSize);
    total += n.selfSize;
    const outer = stack.has(key);
    stack.add(key);
    let sum = n.selfSize;
    for (const c of n.children) sum += walk(c, stack);
    // A recursive function's bytes are counted once, at its outermost frame.
    if (!outer) {
      stack.delete(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + sum);
    }
    return sum;
  };
  walk(profile.head, new Set());
  const perEvent = (bytes: number) => (bytes / events).toFixed(0).padStart(6);
  console.log(
    `${root}, sandbox ${sandbox}: ${events} events in ${secs.toFixed(2)} s ` +
      `(${(events / secs).toFixed(0)}/s); main isolate allocated ${perEvent(total).trim()} B/event`,
  );
  for (const [title, map, n] of [["self", self, 30], ["inclusive", inclusive, 40]] as const) {
    console.log(`-- ${title}, B/event`);
    for (const [key, bytes] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) {
      console.log(`${perEvent(bytes)} ${key}`);
    }
  }
  inspector.close();
  await Promise.all(clients.map((c) => c.close()));
} finally {
  try {
    server.kill("SIGTERM");
  } catch {
    // already gone
  }
  await server.status;
  await Promise.all(pumps);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
