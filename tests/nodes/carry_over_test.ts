/**
 * What a session carries when it moves between nodes: its subscriptions
 * go on from where its log stops, whichever node runs the job.
 */
import { deepEqual, equal } from "assert";
import { connect, type Env, WsClient } from "../../testing/ws_client.ts";
import { range, readUntilTick, resumeOn, seqs, startCluster, ticks } from "./_nodes.ts";

/** The job's seq-bearing envelopes a client received, and the highest seq it holds. */
function received(c: WsClient, jobId: string): { envs: Env[]; last: number } {
  const envs = c.seen.filter((e) => e.job_id === jobId && e.event_seq !== undefined);
  return { envs, last: Math.max(...seqs(c.seen)) };
}

Deno.test("a subscription survives its session moving to another node and back: every later event and the terminal once, in order", async () => {
  await using cluster = await startCluster(["n1", "n2"]);
  const n1 = cluster.nodes.get("n1")!.url;
  const n2 = cluster.nodes.get("n2")!.url;
  await using owner = await connect(n1);
  const acc = await owner.submit({ agent: "ticker", input: { count: 60, interval_ms: 25 } });
  const jobId = acc.job_id!;
  await readUntilTick(owner, jobId, 2);

  // Subscribed on n1, where the job runs.
  const c1 = new WsClient(n1);
  const w1 = await c1.hello("alice-token");
  c1.send("job.subscribe", { job_id: jobId, history: false });
  equal((await c1.next((e) => e.type === "job.subscribed")).payload.current_status, "running");
  await readUntilTick(c1, jobId, 8);
  await c1.close();
  const first = received(c1, jobId);

  // Moved to n2, which feeds it from KV…
  const { c: c2, w: w2 } = await resumeOn(n2, c1.sessionId, w1.payload.resume_token, first.last);
  equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
  await readUntilTick(c2, jobId, 25);
  await c2.close();
  const second = received(c2, jobId);

  // …and back to n1, which runs the job and feeds it directly again.
  const { c: c3, w: w3 } = await resumeOn(n1, c1.sessionId, w2.payload.resume_token, second.last);
  await using _c3 = c3;
  equal(w3.type, "session.welcome", JSON.stringify(w3.payload));
  await c3.untilTerminal(jobId, 60_000);
  const third = received(c3, jobId);

  const all = [...first.envs, ...second.envs, ...third.envs];
  const t = ticks(all);
  deepEqual(t, range(t[0], 60), "each tick once, in order, to the last");
  const terminals = all.filter((e) => e.type !== "job.event");
  equal(terminals.length, 1);
  equal(terminals[0].type, "job.result");
  equal(all.at(-1)!.type, "job.result");
  const s = seqs(all);
  deepEqual(s, range(s[0], s[0] + s.length - 1), "one gap-free stream across three connections");
});
