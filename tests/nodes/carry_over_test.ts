/**
 * What a session carries when it moves between nodes: its subscriptions
 * go on from where its log stops, whichever node runs the job, and input
 * to its running job reaches the node running it.
 */
import { deepEqual, equal } from "assert";
import { ALL_FEATURES, connect, type Env, WsClient } from "../../testing/ws_client.ts";
import { Store } from "../../src/store/store.ts";
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

const WITH_INPUT = [...ALL_FEATURES, "x-arcp-deno.input"];

/** Sends an input and takes its answer (accepted or refused). */
async function sendInput(c: WsClient, jobId: string, content?: unknown): Promise<Env> {
  const req = c.send("x-arcp-deno.job.input", {
    job_id: jobId,
    ...(content === undefined ? { end: true } : { content }),
  });
  return await c.next(
    (e) =>
      (e.type === "x-arcp-deno.job.input_accepted" || e.type === "x-arcp-deno.refused") &&
      e.payload.request_id === req.id,
    30_000,
    "input answer",
  );
}

Deno.test("input from a session on another node than its job's: forwarded through KV, recorded by the running node, accepted once recorded", async () => {
  await using cluster = await startCluster(["n1", "n2"]);
  const c1 = new WsClient(cluster.nodes.get("n1")!.url);
  const w1 = await c1.hello("alice-token", WITH_INPUT);
  const acc = await c1.submit({ agent: "echo-input", input: { greeting: "hello" } });
  const jobId = acc.job_id!;
  await c1.next((e) => e.job_id === jobId && e.payload?.kind === "log", 30_000);
  await c1.close();
  const last = Math.max(...seqs(c1.seen));

  // The session moves to n2; the job keeps running on n1.
  const c2 = new WsClient(cluster.nodes.get("n2")!.url);
  await using _c2 = c2;
  const w2 = await c2.hello("alice-token", WITH_INPUT, {
    session_id: c1.sessionId,
    resume_token: w1.payload.resume_token,
    last_event_seq: last,
  });
  equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
  const one = await sendInput(c2, jobId, "one");
  equal(one.type, "x-arcp-deno.job.input_accepted", JSON.stringify(one.payload));
  equal(one.payload.input_seq, 1);
  // The running node recorded it: the agent's answer comes back through KV.
  const said = await c2.next(
    (e) => e.job_id === jobId && e.payload?.kind === "log" && /one/.test(e.payload.body.message),
    30_000,
  );
  equal(said.payload.body.message, "you said: one");
  const two = await sendInput(c2, jobId, { n: 2 });
  equal(two.payload.input_seq, 2, JSON.stringify(two.payload));
  const end = await sendInput(c2, jobId);
  equal(end.payload.input_seq, 3, JSON.stringify(end.payload));
  const rest = await c2.untilTerminal(jobId, 60_000);
  deepEqual(rest.at(-1)!.payload.result, { answered: 2 });

  // Each input once in the job's history, in order; none left pending in KV.
  const inputs = (await cluster.history(jobId)).filter((h) =>
    h.payload.kind === "x-vendor.arcp-deno.input"
  );
  deepEqual(inputs.map((h) => h.payload.body), [
    { input_seq: 1, content: "one" },
    { input_seq: 2, content: { n: 2 } },
    { input_seq: 3, end: true },
  ]);
  const store = await Store.open({ path: cluster.kvPath });
  try {
    deepEqual(await store.nodes.inputRequests(), []);
  } finally {
    await store.close();
  }
  // The job has ended: input to it now says so, whichever node answers.
  const late = await sendInput(c2, jobId, "late");
  equal(late.type, "x-arcp-deno.refused");
  equal(late.payload.code, "INVALID_REQUEST");
});
