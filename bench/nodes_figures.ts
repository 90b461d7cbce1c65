/**
 * Figure 16: several runtime nodes (`arcp serve` processes) on one KV file.
 * Cross-node cancel latency and subscribe lag beside their same-node
 * baselines, events/s with 3 nodes on one file beside 1 node carrying the
 * same jobs, and the time for another node to end a SIGKILLed node's job.
 * On a local file other nodes' writes are seen by polling (10 ms backing off
 * to 250 ms while idle); KV Connect's `watch` would wake them instead.
 *
 * @module
 */
import { heading, report, scaled } from "./_report.ts";
import { fmt, startChildServer, stats } from "./_util.ts";
import type { ChildServer } from "../testing/server.ts";
import { connect, type Env, WsClient } from "../testing/ws_client.ts";

const ms = (n: number) => fmt(n, n < 10 ? 2 : 1);

/** Nodes on one KV file in a temp dir. */
async function startNodes(ids: string[], flags: string[] = []): Promise<{
  nodes: Map<string, ChildServer>;
  kvPath: string;
  stop(): Promise<void>;
}> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_bench_nodes_" });
  const kvPath = `${dir}/arcp.kv`;
  const nodes = new Map<string, ChildServer>();
  for (const id of ids) nodes.set(id, await startChildServer(kvPath, ["--node-id", id, ...flags]));
  return {
    nodes,
    kvPath,
    async stop() {
      await Promise.all([...nodes.values()].map((n) => n.stop("SIGKILL").catch(() => {})));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Submits a sleeper on `owner`'s node and waits until it sleeps. */
async function sleeping(c: WsClient): Promise<string> {
  const acc = await c.submit({ agent: "sleeper", input: { ms: 120_000 } });
  const jobId = acc.job_id!;
  await c.next((e) => e.job_id === jobId && e.payload?.body?.phase === "sleeping", 30_000);
  return jobId;
}

/** Sends a cancel and returns the ms until the job's terminal arrives. */
async function timeCancel(c: WsClient, jobId: string): Promise<number> {
  const t0 = performance.now();
  c.send("job.cancel", {}, { job_id: jobId });
  await c.next((e) => e.job_id === jobId && e.type === "job.error", 30_000);
  return performance.now() - t0;
}

/** Cancel latency: same node, and from a session resumed on another node. */
async function cancelLatency(n: number): Promise<void> {
  const cluster = await startNodes(["a", "b"]);
  try {
    const a = cluster.nodes.get("a")!.url;
    const b = cluster.nodes.get("b")!.url;
    const local: number[] = [];
    const remote: number[] = [];
    for (let i = 0; i < n; i++) {
      {
        await using c = await connect(a);
        local.push(await timeCancel(c, await sleeping(c)));
      }
      const c1 = new WsClient(a);
      const w = await c1.hello("alice-token");
      const jobId = await sleeping(c1);
      const last = Math.max(0, ...c1.seen.map((e) => e.event_seq ?? 0));
      await c1.close();
      const c2 = new WsClient(b);
      await c2.hello("alice-token", undefined, {
        session_id: c1.sessionId,
        resume_token: w.payload.resume_token,
        last_event_seq: last,
      });
      remote.push(await timeCancel(c2, jobId));
      await c2.close();
    }
    const l = stats(local);
    const r = stats(remote);
    report({
      figure: "16.",
      metric: "cancel → terminal, job on another node, p50",
      value: ms(r.p50),
      unit: "ms",
      notes: `same node ${ms(l.p50)} ms (${fmt(r.p50 / l.p50, 1)}×); p90 ${ms(r.p90)} vs ${
        ms(l.p90)
      } ms; n=${n}`,
    });
  } finally {
    await cluster.stop();
  }
}

/** Subscribe lag: a subscriber's arrival time minus the owner's, per tick. */
async function subscribeLag(ticks: number): Promise<void> {
  const cluster = await startNodes(["a", "b"]);
  try {
    const a = cluster.nodes.get("a")!.url;
    const b = cluster.nodes.get("b")!.url;
    await using owner = await connect(a);
    await using near = await connect(a);
    await using far = await connect(b);
    const at = new Map<WsClient, Map<number, number>>();
    for (const c of [owner, near, far]) {
      const times = new Map<number, number>();
      at.set(c, times);
      const prev = c.ws.onmessage!;
      c.ws.onmessage = (m) => {
        const env = JSON.parse(String(m.data)) as Env;
        if (env.type === "job.event" && env.payload.kind === "progress") {
          times.set(env.payload.body.current, performance.now());
        }
        prev.call(c.ws, m);
      };
    }
    const acc = await owner.submit({ agent: "ticker", input: { count: ticks, interval_ms: 20 } });
    const jobId = acc.job_id!;
    for (const c of [near, far]) c.send("job.subscribe", { job_id: jobId, history: false });
    await owner.untilTerminal(jobId, 120_000);
    await near.untilTerminal(jobId, 120_000);
    await far.untilTerminal(jobId, 120_000);
    const lag = (c: WsClient) => {
      const out: number[] = [];
      for (const [tick, t] of at.get(c)!) {
        const o = at.get(owner)!.get(tick);
        if (o !== undefined) out.push(Math.max(0, t - o));
      }
      return stats(out);
    };
    const n = lag(near);
    const f = lag(far);
    report({
      figure: "16.",
      metric: "subscribe lag behind the owner, subscriber on another node, p50",
      value: ms(f.p50),
      unit: "ms",
      notes: `same node ${ms(n.p50)} ms; p90 ${ms(f.p90)} vs ${ms(n.p90)} ms; a tick every 20 ms`,
    });
  } finally {
    await cluster.stop();
  }
}

/** Events/s of three full-speed tickers: on one node, and one on each of three nodes. */
async function eventsPerSecond(count: number): Promise<void> {
  const run = async (ids: string[]) => {
    const cluster = await startNodes(ids);
    try {
      const urls = [...cluster.nodes.values()].map((n) => n.url);
      const clients = await Promise.all(
        [0, 1, 2].map((i) => connect(urls[i % urls.length])),
      );
      const t0 = performance.now();
      await Promise.all(clients.map(async (c) => {
        const acc = await c.submit({ agent: "ticker", input: { count, interval_ms: 0 } });
        await c.untilTerminal(acc.job_id!, 300_000);
      }));
      const seconds = (performance.now() - t0) / 1000;
      for (const c of clients) await c.close();
      return (3 * count) / seconds;
    } finally {
      await cluster.stop();
    }
  };
  const one = await run(["solo"]);
  const three = await run(["x", "y", "z"]);
  report({
    figure: "16.",
    metric: "events/s, 3 full-speed tickers on 3 nodes sharing one KV file",
    value: fmt(three, 0),
    unit: "events/s",
    notes: `1 node with the same 3 tickers: ${fmt(one, 0)} events/s (${
      fmt(three / one, 2)
    }×); one SQLite file has one writer at a time`,
  });
}

/** Time from SIGKILL of a job's node to its terminal reaching a subscriber on another node. */
async function takeover(n: number): Promise<void> {
  const cluster = await startNodes(["a", "b"]);
  try {
    const b = cluster.nodes.get("b")!.url;
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const victim = cluster.nodes.get("a")!;
      const c1 = await connect(victim.url);
      const jobId = await sleeping(c1);
      await using watcher = await connect(b);
      watcher.send("job.subscribe", { job_id: jobId, history: false });
      await watcher.next((e) => e.type === "job.subscribed", 30_000);
      const t0 = performance.now();
      await victim.stop("SIGKILL");
      await watcher.next((e) => e.job_id === jobId && e.type === "job.error", 60_000);
      times.push(performance.now() - t0);
      await c1.close();
      cluster.nodes.set("a", await startChildServer(cluster.kvPath, ["--node-id", "a"]));
    }
    const s = stats(times);
    report({
      figure: "16.",
      metric: "SIGKILL of a job's node → its terminal at a subscriber elsewhere, p50",
      value: ms(s.p50),
      unit: "ms",
      notes: `max ${
        ms(s.max)
      } ms, n=${n}; default lease: renewed and scanned every 2 s; same host, so the dead pid is seen at the next scan (another host's node waits for its 10 s lease)`,
    });
  } finally {
    await cluster.stop();
  }
}

/** Figure 16: several nodes on one KV file. */
export async function figure16(): Promise<void> {
  heading(
    "Figure 16 — nodes sharing one KV file: cross-node cancel, subscribe, throughput, takeover",
  );
  await cancelLatency(scaled(10, 3));
  await subscribeLag(scaled(200, 30));
  await eventsPerSecond(scaled(20_000, 1000));
  await takeover(scaled(3, 1));
}
