/**
 * Figure 13: storage that stays bounded. `session.list_jobs` over a real
 * session as the store grows from 1,000 to 100,000 finished jobs (written
 * straight through the store API, as the runtime writes them), first page
 * and a page 50 deep, with and without filters, each as a ratio to its time
 * at 1,000 jobs; and the KV bytes one real echo job leaves behind.
 *
 * @module
 */
import { Store } from "../src/store/store.ts";
import type { JobRecord } from "../src/store/records.ts";
import { startServer, type TestServer } from "../testing/server.ts";
import { connect, type WsClient } from "../testing/ws_client.ts";
import { heading, report, scaled } from "./_report.ts";
import { BENCH_TOKENS, fmt, stats } from "./_util.ts";

/** Jobs per listing page, so that page 50 exists at 1,000 jobs. */
const LIMIT = 10;

/** Requests timed per query and store size, after a warm-up. */
const SAMPLES = 300;

/** The listings timed: filter, and whether a page 50 deep is timed too. */
const QUERIES: ReadonlyArray<{ name: string; filter?: Record<string, unknown>; deep: boolean }> = [
  { name: "no filter", deep: true },
  { name: "status success (73 % of jobs)", filter: { status: ["success"] }, deep: true },
  { name: "agent echo (80 %)", filter: { agent: "echo" }, deep: true },
  {
    name: "status error + agent ticker (5 %)",
    filter: { status: ["error"], agent: "ticker" },
    deep: false,
  },
  { name: "status cancelled (2 %)", filter: { status: ["cancelled"] }, deep: false },
];

/** The i-th of n finished jobs: 80 % echo, 25 % error, 2 % cancelled, the rest success. */
function finishedJob(i: number, n: number, now: number): JobRecord {
  // Spread over the last n seconds, inside the default retention.
  const created = now - (n - i) * 1000;
  const status = i % 50 === 7 ? "cancelled" : i % 4 === 3 ? "error" : "success";
  return {
    job_id: `job_${String(i).padStart(8, "0")}`,
    principal: "alice",
    session_id: "sess_bench",
    agent: i % 5 === 1 ? "ticker@1.0.0" : "echo@2.0.0",
    status,
    lease: {},
    trace_id: "0".repeat(32),
    created_at: new Date(created).toISOString(),
    created_ms: created,
    accepted_at: new Date(created).toISOString(),
    ended_at: new Date(created + 5).toISOString(),
    last_event_seq: 3,
    log_length: 3,
  };
}

/** A KV file holding `n` finished jobs of alice, at the current layout. */
async function storeWith(n: number): Promise<{ dir: string; kvPath: string }> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_bench_store_" });
  const kvPath = `${dir}/arcp.kv`;
  const store = await Store.open({ path: kvPath });
  // An empty store takes the current layout, so the runtime does not re-index what we write.
  await store.migrate();
  const now = Date.now();
  for (let i = 0; i < n; i += 100) {
    const writes = [];
    for (let j = i; j < Math.min(n, i + 100); j++) {
      writes.push(...store.jobWrites(finishedJob(j, n, now)));
    }
    await store.write(writes);
  }
  await store.close();
  return { dir, kvPath };
}

async function listOnce(c: WsClient, payload: Record<string, unknown>): Promise<{
  ms: number;
  cursor: string | null;
  jobs: number;
}> {
  const t0 = performance.now();
  const req = c.send("session.list_jobs", payload);
  const res = await c.next((e) => e.payload?.request_id === req.id || e.type === "session.error");
  const ms = performance.now() - t0;
  if (res.type !== "session.jobs") throw new Error(`list_jobs failed: ${JSON.stringify(res)}`);
  // The client keeps what it receives; drop it so thousands of pages cost nothing.
  c.seen.length = 0;
  c.inbox.length = 0;
  return { ms, cursor: res.payload.next_cursor, jobs: res.payload.jobs.length };
}

/** The cursor of page 50 of a listing (49 pages read first). */
async function cursorOfPage50(c: WsClient, filter?: Record<string, unknown>): Promise<string> {
  let cursor: string | null = null;
  for (let page = 1; page < 50; page++) {
    ({ cursor } = await listOnce(c, { limit: LIMIT, filter, ...(cursor ? { cursor } : {}) }));
    if (!cursor) throw new Error(`fewer than 50 pages for ${JSON.stringify(filter)}`);
  }
  return cursor!;
}

/** A session's round trip for a ping: the floor under every listing on that socket. */
async function ping(c: WsClient): Promise<number> {
  const t0 = performance.now();
  const nonce = crypto.randomUUID();
  c.send("session.ping", { nonce, sent_at: new Date().toISOString() });
  await c.next((e) => e.type === "session.pong" && e.payload.ping_nonce === nonce);
  const ms = performance.now() - t0;
  c.seen.length = 0;
  c.inbox.length = 0;
  return ms;
}

/**
 * p50 of each request against each store, sampled in turns (one from each
 * store, then again), so load on the machine and warm-up fall on both alike.
 */
async function alternate(
  sides: Array<() => Promise<number>>,
): Promise<number[]> {
  for (let i = 0; i < 10; i++) for (const side of sides) await side();
  const samples: number[][] = sides.map(() => []);
  for (let i = 0; i < SAMPLES; i++) {
    for (let k = 0; k < sides.length; k++) samples[k].push(await sides[k]());
  }
  return samples.map((s) => stats(s).p50);
}

/** Times every query against stores of each size; `[name, p50 per size]`. */
async function timeListings(sizes: number[]): Promise<Array<[string, number[]]>> {
  const stores = await Promise.all(sizes.map(storeWith));
  const servers: TestServer[] = [];
  try {
    for (const { kvPath } of stores) {
      servers.push(await startServer({ kvPath, tokens: BENCH_TOKENS, sandbox: "worker" }));
    }
    const clients = await Promise.all(servers.map((s) => connect(s.url)));
    const out: Array<[string, number[]]> = [];
    out.push(["ping", await alternate(clients.map((c) => () => ping(c)))]);
    for (const q of QUERIES) {
      const base = { limit: LIMIT, ...(q.filter ? { filter: q.filter } : {}) };
      out.push([
        `${q.name} / first page`,
        await alternate(clients.map((c) => async () => (await listOnce(c, base)).ms)),
      ]);
      if (!q.deep) continue;
      const cursors = await Promise.all(clients.map((c) => cursorOfPage50(c, q.filter)));
      out.push([
        `${q.name} / page 50`,
        await alternate(
          clients.map((c, k) => async () =>
            (await listOnce(c, { ...base, cursor: cursors[k] })).ms
          ),
        ),
      ]);
    }
    await Promise.all(clients.map((c) => c.close()));
    return out;
  } finally {
    for (const server of servers) await server.close();
    for (const { dir } of stores) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Sums what KV holds, in bytes of keys and values (JSON/UTF-8 length), by key kind. */
async function kvBytes(kvPath: string): Promise<Map<string, number>> {
  const kv = await Deno.openKv(kvPath);
  const out = new Map<string, number>();
  const enc = new TextEncoder();
  try {
    for await (const e of kv.list({ prefix: [] })) {
      const kind = String(e.key[1] ?? e.key[0]);
      const value = typeof e.value === "string" ? e.value : JSON.stringify(e.value) ?? "";
      const bytes = enc.encode(JSON.stringify(e.key)).length + enc.encode(value).length;
      out.set(kind, (out.get(kind) ?? 0) + bytes);
    }
  } finally {
    kv.close();
  }
  return out;
}

async function fileBytes(kvPath: string): Promise<number> {
  let n = 0;
  for (const suffix of ["", "-wal"]) {
    n += await Deno.stat(kvPath + suffix).then((s) => s.size, () => 0);
  }
  return n;
}

/** Runs `jobs` echo jobs on one session of a runtime over `kvPath`, then closes it. */
async function echoJobs(kvPath: string, jobs: number): Promise<void> {
  const server: TestServer = await startServer({ kvPath, tokens: BENCH_TOKENS, sandbox: "worker" });
  try {
    const c = await connect(server.url);
    for (let i = 0; i < jobs; i++) {
      const acc = await c.submit({ agent: "echo", input: { i, text: "hello" } });
      await c.untilTerminal(acc.job_id!);
      c.seen.length = 0;
    }
    await c.close();
  } finally {
    await server.close();
  }
}

/** Figure 13: list_jobs as the store grows, and KV bytes per echo job. */
export async function figure13(): Promise<void> {
  const small = 1_000;
  const large = scaled(100_000, 2_000);
  heading(
    `13a. session.list_jobs, ${LIMIT} a page, p50 of ${SAMPLES}: ${small} vs ${large} finished jobs`,
  );
  const times = await timeListings([small, large]);
  const figure = `13a. list_jobs at ${fmt(large, 0)} jobs`;
  for (const [key, [base, ms]] of times) {
    if (key === "ping") {
      report({
        figure,
        metric: "ceiling: session.ping round trip on the same socket",
        value: `${fmt(ms, 2)} ms`,
        unit: "",
        notes: `${fmt(base, 2)} ms beside ${small} jobs`,
      });
      continue;
    }
    report({
      figure,
      metric: `${key}: ÷ time at ${small} jobs`,
      value: `${fmt(ms / base, 2)}×`,
      unit: "",
      notes: `p50 ${fmt(base, 2)} ms at ${small}, ${fmt(ms, 2)} ms at ${
        fmt(large, 0)
      }; target ≤ 1.5×`,
    });
  }

  const jobs = scaled(300, 30);
  heading(`13b. KV bytes per echo job: ${jobs} sequential echo jobs on one session, no acks`);
  const dir = await Deno.makeTempDir({ prefix: "arcp_bench_bytes_" });
  const kvPath = `${dir}/arcp.kv`;
  try {
    await echoJobs(kvPath, 3); // warm-up: the session's first records, layout marker
    const [bytes0, file0] = [await kvBytes(kvPath), await fileBytes(kvPath)];
    await echoJobs(kvPath, jobs);
    const [bytes1, file1] = [await kvBytes(kvPath), await fileBytes(kvPath)];
    const grew = (kinds: string[]) =>
      kinds.reduce((n, k) => n + (bytes1.get(k) ?? 0) - (bytes0.get(k) ?? 0), 0) / jobs;
    const total = grew([...new Set([...bytes0.keys(), ...bytes1.keys()])]);
    const fig = "13b. KV bytes per echo job";
    report({
      figure: fig,
      metric: "keys + values written, per job",
      value: fmt(total, 0),
      unit: "B",
      notes: `record and list indexes ${fmt(grew(["job", "pjs", "pja", "ended"]), 0)} B, ` +
        `job history ${fmt(grew(["jlog"]), 0)} B, session log ${fmt(grew(["slog", "sess"]), 0)} B`,
    });
    report({
      figure: fig,
      metric: "KV file growth (SQLite pages, WAL included), per job",
      value: fmt((file1 - file0) / jobs, 0),
      unit: "B",
      notes: `${fmt(file0 / 1024, 0)} → ${fmt(file1 / 1024, 0)} KiB after ${jobs} jobs`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
