/**
 * Retention on a real runtime with periods of a fraction of a second:
 * finished jobs leave `session.list_jobs` and KV, with their histories,
 * index entries and idempotency keys, and old audit entries go; live jobs
 * and every envelope a session has not acknowledged stay.
 */
import { deepEqual, equal, notEqual, ok } from "assert";
import { startServer } from "../../testing/server.ts";
import { ALL_FEATURES, connect, type Env, resume, WsClient } from "../../testing/ws_client.ts";

/** Sends session.list_jobs and returns the listed job ids. */
async function listed(c: WsClient, filter?: Record<string, unknown>): Promise<string[]> {
  const req = c.send("session.list_jobs", filter ? { filter } : {});
  const res = await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
  return res.payload.jobs.map((j: { job_id: string }) => j.job_id);
}

/** Checks `done` every 50 ms until it holds (the sweeper has no event to await). */
async function until(done: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await done()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never happened: ${what}`);
}

async function count(kv: Deno.Kv, prefix: Deno.KvKey): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix })) n++;
  return n;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("finished jobs leave list_jobs and KV after the retention period; live jobs and unacknowledged events stay", async () => {
  await using server = await startServer({
    sweepIntervalMs: 50,
    jobRetentionMs: 300,
    auditRetentionMs: 300,
  });
  // A negotiates ack and never acknowledges anything.
  const a = new WsClient(server.url);
  const welcome = await a.hello("alice-token", ALL_FEATURES);
  const echo = await a.submit({ agent: "echo", input: "kept?", idempotency_key: "k1" });
  equal((await a.untilTerminal(echo.job_id!)).at(-1)!.type, "job.result");
  const failed = await a.submit({ agent: "failer", input: { message: "no" } });
  equal((await a.untilTerminal(failed.job_id!)).at(-1)!.type, "job.error");
  const sleeper = await a.submit({ agent: "sleeper", input: { ms: 60_000 } });
  await a.next((e) => e.job_id === sleeper.job_id && e.payload?.body?.phase === "sleeping");
  const last = Math.max(...a.seen.map((e) => e.event_seq ?? 0));
  // Detached, well inside its resume window.
  await a.close();

  await using b = await connect(server.url);
  b.send("job.subscribe", { job_id: sleeper.job_id, history: false });
  await b.next((e) => e.type === "job.subscribed");
  const kv = await Deno.openKv(server.kvPath);
  try {
    await until(
      async () => (await listed(b)).length === 1 && (await count(kv, ["v1", "audit"])) === 0,
      "finished jobs and the audit entry swept",
    );
    deepEqual(await listed(b), [sleeper.job_id]);
    deepEqual(await listed(b, { status: ["running"] }), [sleeper.job_id]);
    deepEqual(await listed(b, { status: ["success", "error"] }), []);
    deepEqual(await listed(b, { agent: "echo" }), []);
    deepEqual(await listed(b, { agent: "sleeper" }), [sleeper.job_id]);

    for (const id of [echo.job_id!, failed.job_id!]) {
      equal((await kv.get(["v1", "job", id])).value, null, `record of ${id}`);
      equal(await count(kv, ["v1", "jlog", id]), 0, `history of ${id}`);
    }
    equal((await kv.get(["v1", "idem", "alice", await sha256Hex("k1")])).value, null);
    // The sleeper's live entry is all that is left in the list indexes.
    equal(await count(kv, ["v1", "plive", "alice"]), 1);
    equal(await count(kv, ["v1", "pjs", "alice"]), 0);
    equal(await count(kv, ["v1", "pja", "alice"]), 0);
    equal(await count(kv, ["v1", "ended"]) + await count(kv, ["v1", "kept"]), 0);
    const live = (await kv.get<{ status: string }>(["v1", "job", sleeper.job_id!])).value;
    equal(live?.status, "running");
    ok(await count(kv, ["v1", "jlog", sleeper.job_id!]) > 0, "the live job's history was swept");
  } finally {
    kv.close();
  }

  // Every envelope A did not acknowledge is still there, those of deleted jobs included.
  await using resumed = await resume(server.url, {
    sessionId: welcome.session_id!,
    resumeToken: welcome.payload.resume_token,
  });
  const replay: Env[] = [];
  while (replay.at(-1)?.event_seq !== last) {
    replay.push(await resumed.next((e) => e.event_seq !== undefined));
  }
  deepEqual(replay.map((e) => e.event_seq), Array.from({ length: last }, (_, i) => i + 1));
  ok(replay.some((e) => e.job_id === echo.job_id && e.type === "job.result"));
  ok(replay.some((e) => e.job_id === failed.job_id && e.type === "job.error"));

  // The idempotency key went with its job: the same key now makes a new job.
  const again = await resumed.submit({ agent: "echo", input: "kept?", idempotency_key: "k1" });
  equal(again.type, "job.accepted");
  notEqual(again.job_id, echo.job_id);
  resumed.send("job.cancel", {}, { job_id: sleeper.job_id });
  await resumed.untilTerminal(sleeper.job_id!);
});
