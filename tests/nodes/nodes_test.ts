/**
 * Three `arcp serve` processes on one KV file: each is a node; none ends
 * another live node's jobs; cancel, subscribe and resume work across them;
 * a node killed mid-stream has its jobs ended by exactly one other node and
 * its clients resume elsewhere with nothing lost or repeated; restarted, it
 * rejoins.
 */
import { deepEqual, equal, match, notEqual, ok } from "assert";
import { connect, type Env, WsClient } from "../../testing/ws_client.ts";
import { CLI_RUN } from "../../testing/server.ts";
import type { NodeInfo } from "../../src/jobs/job_manager.ts";
import { type Answer, call } from "../api/_api.ts";
import { range, readUntilTick, resumeOn, seqs, startCluster, ticks, until } from "./_nodes.ts";

const url = (c: { nodes: Map<string, { url: string }> }, id: string) => c.nodes.get(id)!.url;

Deno.test("three nodes on one KV: each joins, runs its own jobs, and a node joining later leaves a live node's job running", async () => {
  await using cluster = await startCluster(["n1"]);
  await using c1 = await connect(url(cluster, "n1"));
  const sleeper = await c1.submit({ agent: "sleeper", input: { ms: 60_000 } });
  equal(sleeper.type, "job.accepted");
  await c1.next((e) => e.job_id === sleeper.job_id && e.payload?.body?.phase === "sleeping");

  // Joining nodes recover only dead nodes' jobs: n1's sleeper keeps running.
  await cluster.start("n2");
  await cluster.start("n3");
  const records = await cluster.records();
  deepEqual(records.map((r) => r.node_id).sort(), ["n1", "n2", "n3"]);
  ok(records.every((r) => r.lease_until > Date.now() - 1000), "every lease is current");
  ok(records.every((r) => r.url?.startsWith("ws://127.0.0.1:")), "each node advertises its URL");

  for (const id of ["n1", "n2", "n3"]) {
    await using c = await connect(url(cluster, id));
    const acc = await c.submit({ agent: "echo", input: { on: id } });
    equal(acc.type, "job.accepted");
    deepEqual((await c.untilTerminal(acc.job_id!)).at(-1)!.payload.result, {
      echo: { on: id },
      version: "2.0.0",
    });
  }
  // The sleeper was never ended by a joining node.
  ok(!c1.seen.some((e) => e.job_id === sleeper.job_id && e.type === "job.error"));
  const history = await cluster.history(sleeper.job_id!);
  ok(history.every((h) => h.type === "job.event"), "the sleeper's history has no terminal");
});

Deno.test("idempotent submit on two nodes at once returns one job", async () => {
  await using cluster = await startCluster(["a", "b"]);
  await using ca = await connect(url(cluster, "a"));
  await using cb = await connect(url(cluster, "b"));
  const submit = { agent: "sleeper", input: { ms: 200 }, idempotency_key: "one-job" };
  const [ra, rb] = await Promise.all([ca.submit(submit), cb.submit(submit)]);
  equal(ra.type, "job.accepted", JSON.stringify(ra.payload));
  equal(rb.type, "job.accepted", JSON.stringify(rb.payload));
  equal(ra.job_id, rb.job_id);
});

Deno.test("subscribe on one node to a job running on another: history and live, each event once, in order", async () => {
  await using cluster = await startCluster(["n1", "n2"]);
  await using owner = await connect(url(cluster, "n1"));
  const acc = await owner.submit({ agent: "ticker", input: { count: 40, interval_ms: 25 } });
  const jobId = acc.job_id!;
  await readUntilTick(owner, jobId, 5);

  await using watcher = await connect(url(cluster, "n2"));
  watcher.send("job.subscribe", { job_id: jobId, history: true });
  const subscribed = await watcher.next((e) => e.type === "job.subscribed");
  equal(subscribed.payload.current_status, "running");
  const got = await watcher.untilTerminal(jobId, 60_000);
  deepEqual(ticks(got), range(1, 40));
  const end = got.at(-1)!;
  equal(end.type, "job.result");
  deepEqual(end.payload.result, { ticks: 40 });
  const s = seqs(got);
  deepEqual(s, range(s[0], s[0] + s.length - 1), "the subscriber's seqs are gap-free");
  equal(got.filter((e) => e.type === "job.result").length, 1);
});

Deno.test("resume on another node while the first lives (a load balancer moved the client): every event once, then cancel from there", async () => {
  await using cluster = await startCluster(["n1", "n2"]);
  const c1 = new WsClient(url(cluster, "n1"));
  const w1 = await c1.hello("alice-token");
  const acc = await c1.submit({ agent: "ticker", input: { count: 30, interval_ms: 25 } });
  const ticker = acc.job_id!;
  const sleeperAcc = await c1.submit({ agent: "sleeper", input: { ms: 60_000 } });
  const sleeper = sleeperAcc.job_id!;
  await readUntilTick(c1, ticker, 8);
  // Everything the client has seen so far, of both jobs. What it holds and the seq it
  // resumes from come from this one snapshot: frames past tick 8 can have landed
  // since readUntilTick returned, and the resume rightly starts after them.
  const seen = c1.seen.filter((e) => e.event_seq !== undefined);
  const last = Math.max(...seqs(seen));
  await c1.close();

  const { c: c2, w: w2 } = await resumeOn(
    url(cluster, "n2"),
    c1.sessionId,
    w1.payload.resume_token,
    last,
  );
  await using _c2 = c2;
  equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
  const rest = await c2.untilTerminal(ticker, 60_000);
  const held = seen.filter((e) => e.job_id === ticker);
  deepEqual([...ticks(held), ...ticks(rest)], range(1, 30));
  equal(rest.at(-1)!.type, "job.result");

  // The sleeper runs on n1; the session now lives on n2, which cancels it.
  c2.send("job.cancel", { reason: "moved" }, { job_id: sleeper });
  const cancelled = await c2.next(
    (e) => (e.type === "job.cancelled" && e.job_id === sleeper) || e.type === "session.error",
    30_000,
  );
  equal(cancelled.type, "job.cancelled", JSON.stringify(cancelled.payload));
  const end = await c2.next(
    (e) => e.job_id === sleeper && (e.type === "job.error" || e.type === "job.result"),
    30_000,
  );
  equal(end.type, "job.error");
  equal(end.payload.code, "CANCELLED");

  // One stream: the session's seqs after the resume follow on from `last`, each once.
  const after = c2.seen.filter((e) => e.event_seq !== undefined);
  deepEqual(seqs(after), range(last + 1, last + after.length));
});

Deno.test("SIGKILL of the owning node mid-stream: exactly one other node ends its job INTERNAL_ERROR (retryable), the client resumes elsewhere with nothing lost or repeated, and the node rejoins", async () => {
  await using cluster = await startCluster(["n1", "n2", "n3"]);
  const c1 = new WsClient(url(cluster, "n1"));
  const w1 = await c1.hello("alice-token");
  const acc = await c1.submit({ agent: "ticker", input: { count: 100_000, interval_ms: 20 } });
  const jobId = acc.job_id!;
  const before = await readUntilTick(c1, jobId, 10);
  const oldRun = (await cluster.records()).find((r) => r.node_id === "n1")!.run;
  await cluster.nodes.get("n1")!.stop("SIGKILL");
  cluster.nodes.delete("n1");
  // What the client holds: everything received before the socket died.
  await c1.closed(30_000);
  const received = c1.seen.filter((e) => e.job_id === jobId && e.event_seq !== undefined);
  const last = received.at(-1)!.event_seq!;

  const { c: c2, w: w2 } = await resumeOn(
    url(cluster, "n3"),
    c1.sessionId,
    w1.payload.resume_token,
    last,
  );
  await using _c2 = c2;
  equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
  const rest = await c2.untilTerminal(jobId, 60_000);
  const end = rest.at(-1)!;
  equal(end.type, "job.error");
  equal(end.payload.code, "INTERNAL_ERROR");
  equal(end.payload.retryable, true);
  // Nothing lost, nothing repeated: ticks run on from where the client was, seqs too.
  const all = [...received, ...rest];
  const t = ticks(all);
  deepEqual(t, range(1, t.length));
  deepEqual(seqs(rest), range(last + 1, last + seqs(rest).length));
  ok(before.length > 0);

  // Exactly one node ended it: one terminal in the job's history, one takeover line.
  const history = await cluster.history(jobId);
  equal(history.filter((h) => h.type !== "job.event").length, 1);
  await until(
    () =>
      ["n2", "n3"].some((id) =>
        cluster.nodes.get(id)!.output().includes("ending a job of a dead node")
      ),
    "a takeover line",
  );
  const takers = ["n2", "n3"].filter((id) =>
    cluster.nodes.get(id)!.output().split("\n").some((l) =>
      l.includes("ending a job of a dead node") && l.includes(jobId)
    )
  );
  equal(takers.length, 1, `one node ended ${jobId}, not ${takers}`);

  // Restarted under its id, n1 rejoins as a new run and serves again.
  const n1 = await cluster.start("n1");
  const records = await cluster.records();
  const again = records.find((r) => r.node_id === "n1")!;
  notEqual(again.run, oldRun);
  deepEqual(records.map((r) => r.node_id).sort(), ["n1", "n2", "n3"]);
  await using c3 = await connect(n1.url);
  const echo = await c3.submit({ agent: "echo", input: "back" });
  equal((await c3.untilTerminal(echo.job_id!)).at(-1)!.type, "job.result");
});

Deno.test("SIGTERM drains a node: it ends its own jobs at the deadline, hands nothing off, and leaves its record", async () => {
  await using cluster = await startCluster(["n2"]);
  await cluster.start("n1", ["--drain-sec", "0"]);
  await using watcher = await connect(url(cluster, "n2"));
  const c1 = new WsClient(url(cluster, "n1"));
  await c1.hello("alice-token");
  const acc = await c1.submit({ agent: "sleeper", input: { ms: 60_000 } });
  await c1.next((e) => e.job_id === acc.job_id && e.payload?.body?.phase === "sleeping");
  watcher.send("job.subscribe", { job_id: acc.job_id, history: false });
  await watcher.next((e) => e.type === "job.subscribed");
  const status = await cluster.nodes.get("n1")!.stop("SIGTERM");
  cluster.nodes.delete("n1");
  equal(status.code, 0);
  const end: Env = await watcher.next(
    (e) => e.job_id === acc.job_id && e.type === "job.error",
    30_000,
  );
  // n1 ended it itself (the drain's deadline), not n2 taking over a dead node's job.
  equal(end.payload.code, "INTERNAL_ERROR");
  equal(end.payload.details.cap, "drain_deadline");
  deepEqual((await cluster.records()).map((r) => r.node_id), ["n2"]);
  ok(!cluster.nodes.get("n2")!.output().includes("ending a job of a dead node"));
});

Deno.test("the management API and arcp status list the nodes; diagnostics say the KV is shared; an operator cancels a job on another node", async () => {
  await using cluster = await startCluster([]);
  await cluster.start("n1", ["--admin", "bob"]);
  await cluster.start("n2", ["--admin", "bob"]);
  const http = (id: string) => url(cluster, id).replace(/^ws/, "http").replace(/\/arcp$/, "");
  await using c1 = await connect(url(cluster, "n1"));
  const acc = await c1.submit({ agent: "sleeper", input: { ms: 60_000 } });
  await c1.next((e) => e.job_id === acc.job_id && e.payload?.body?.phase === "sleeping");

  // n1's renewal carries its live job to the record n2 reads.
  let summary!: Answer;
  await until(async () => {
    summary = await call(http("n2"), "/v1/runtime", "alice-token");
    return summary.body.nodes.find((n: NodeInfo) => n.node_id === "n1")?.live_jobs === 1;
  }, "n1's record to count its job");
  equal(summary.status, 200);
  equal(summary.body.node_id, "n2");
  const nodes: NodeInfo[] = summary.body.nodes;
  deepEqual(nodes.map((n) => [n.node_id, n.self, n.alive]), [["n2", true, true], [
    "n1",
    false,
    true,
  ]]);
  equal(nodes[1].url, url(cluster, "n1"));
  ok(nodes.every((n) => n.age_ms >= 0 && Date.parse(n.lease_expires_at) > Date.now() - 1000));

  const out = await new Deno.Command(Deno.execPath(), {
    args: [...CLI_RUN, "status"],
    env: { ARCP_URL: url(cluster, "n2"), ARCP_TOKEN: "alice-token" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  equal(out.code, 0, new TextDecoder().decode(out.stderr));
  match(text, /nodes: +2 on this KV \(this one: n2\)/);
  match(text, new RegExp(`n1  ${url(cluster, "n1")}  up \\S+, 1 live jobs, lease until \\S+\n`));
  match(text, /n2 {2}.* \(this node\)/);

  const diagnostics = await call(http("n2"), "/v1/diagnostics", "bob-token");
  const shared = diagnostics.body.items.find((i: { code: string }) => i.code === "shared_kv");
  match(shared.message, /shared with 1 other live node \(n1\)/);

  // Cancelled through n2's API, ended by n1, which runs it.
  const cancel = await call(http("n2"), `/v1/jobs/${acc.job_id}/cancel`, "bob-token", {
    method: "POST",
    body: { reason: "runaway" },
  });
  equal(cancel.status, 202, JSON.stringify(cancel.body));
  const end = (await c1.untilTerminal(acc.job_id!)).at(-1)!;
  equal(end.payload.code, "CANCELLED");
  equal(end.payload.details.actor, "bob");
  equal(end.payload.details.admin, true);
});

Deno.test("a principal's cap on live jobs holds across nodes", async () => {
  await using cluster = await startCluster([]);
  const n1 = await cluster.start("n1", ["--principal-max-jobs", "2"]);
  const n2 = await cluster.start("n2", ["--principal-max-jobs", "2"]);
  const n2Joined = Date.now();
  // n1 learns of n2 in the scan that follows a renewal: once n1 has renewed
  // twice since n2's record was written, that scan has run (renew, scan, renew…).
  let firstRenewal: number | undefined;
  await until(async () => {
    const r1 = (await cluster.records()).find((r) => r.node_id === "n1")!;
    if (r1.renewed_at <= n2Joined) return false;
    firstRenewal ??= r1.renewed_at;
    return r1.renewed_at > firstRenewal;
  }, "n1 scanning the nodes after n2 joined");
  await using c1 = await connect(n1.url);
  await using c2 = await connect(n2.url);
  const sleeper = { agent: "sleeper", input: { ms: 60_000 } };
  equal((await c1.submit(sleeper)).type, "job.accepted");
  equal((await c2.submit(sleeper)).type, "job.accepted");
  for (const c of [c1, c2]) {
    const refused = await c.submit(sleeper);
    equal(refused.type, "job.error", JSON.stringify(refused.payload));
    equal(refused.payload.details?.cap, "concurrent_jobs");
  }
});

Deno.test("a session that moves to another node and back to the one running its job misses nothing and repeats nothing", async () => {
  await using cluster = await startCluster(["n1", "n2"]);
  const c1 = new WsClient(url(cluster, "n1"));
  const w1 = await c1.hello("alice-token");
  const acc = await c1.submit({ agent: "ticker", input: { count: 60, interval_ms: 25 } });
  const jobId = acc.job_id!;
  const first = await readUntilTick(c1, jobId, 5);
  await c1.close();

  // To n2, which feeds it the job from KV…
  const { c: c2, w: w2 } = await resumeOn(
    url(cluster, "n2"),
    c1.sessionId,
    w1.payload.resume_token,
    first.at(-1)!.event_seq!,
  );
  equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
  const second = await readUntilTick(c2, jobId, 20);
  await c2.close();

  // …and back to n1, which runs it.
  const { c: c3, w: w3 } = await resumeOn(
    url(cluster, "n1"),
    c1.sessionId,
    w2.payload.resume_token,
    second.at(-1)!.event_seq!,
  );
  await using _c3 = c3;
  equal(w3.type, "session.welcome", JSON.stringify(w3.payload));
  const third = await c3.untilTerminal(jobId, 60_000);
  equal(third.at(-1)!.type, "job.result");
  const all = [...first, ...second, ...third];
  deepEqual(ticks(all), range(1, 60));
  const s = seqs(all);
  deepEqual(s, range(s[0], s[0] + s.length - 1), "one gap-free stream across three connections");
});

Deno.test("a resume with a wrong token on another node is refused and leaves the session where it is", async () => {
  await using cluster = await startCluster(["n1", "n2"]);
  await using c1 = await connect(url(cluster, "n1"));
  const acc = await c1.submit({ agent: "ticker", input: { count: 20, interval_ms: 25 } });
  await readUntilTick(c1, acc.job_id!, 2);
  const { c: bogus, w } = await resumeOn(url(cluster, "n2"), c1.sessionId, "rt_wrong", 0);
  equal(w.type, "session.error");
  equal(w.payload.code, "RESUME_WINDOW_EXPIRED");
  await bogus.close();
  // The session stayed on n1, connected: the job's events keep coming there, to the end.
  const rest = await c1.untilTerminal(acc.job_id!, 60_000);
  equal(rest.at(-1)!.type, "job.result");
  equal(c1.closeCode, undefined);
});

Deno.test("a node whose next scan for other nodes is a minute away still hands over a session and takes a cancel a later node asks of it", async () => {
  await using cluster = await startCluster([]);
  // n1 renews (and scans) once a minute: until then it sees no other node on
  // its KV, so it learns of n2's requests only from the mark they rewrite.
  await cluster.start("n1", ["--node-lease-ms", "120000", "--node-renew-ms", "60000"]);
  const c1 = new WsClient(url(cluster, "n1"));
  const w1 = await c1.hello("alice-token");
  const acc = await c1.submit({ agent: "sleeper", input: { ms: 60_000 } });
  const sleeper = acc.job_id!;
  await c1.next((e) => e.job_id === sleeper && e.payload?.body?.phase === "sleeping");
  const last = Math.max(...seqs(c1.seen.filter((e) => e.event_seq !== undefined)));
  await c1.close();

  await cluster.start("n2");
  const n1 = (await cluster.records()).find((r) => r.node_id === "n1")!;
  ok(n1.lease_until - n1.renewed_at >= 120_000, "n1 kept its long lease");
  // n1 holds the session: n2 resumes it only once n1 lets it go (a handover request).
  const moved = await resumeOn(url(cluster, "n2"), c1.sessionId, w1.payload.resume_token, last);
  await using c2 = moved.c;
  equal(moved.w.type, "session.welcome", JSON.stringify(moved.w.payload));

  // The sleeper runs on n1; n2 asks it to cancel (a cancel request).
  c2.send("job.cancel", { reason: "moved" }, { job_id: sleeper });
  const end = (await c2.untilTerminal(sleeper, 30_000)).at(-1)!;
  equal(end.type, "job.error");
  equal(end.payload.code, "CANCELLED");
  const renewed = (await cluster.records()).find((r) => r.node_id === "n1")!;
  equal(
    renewed.renewed_at,
    n1.renewed_at,
    "n1 renewed (and scanned) meanwhile: the test proves nothing",
  );
});
