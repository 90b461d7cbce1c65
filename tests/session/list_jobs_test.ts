import { deepEqual, equal, match, ok } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect, type Env, traceId, type WsClient } from "../../testing/ws_client.ts";

type Entry = {
  job_id: string;
  agent: string;
  status: string;
  lease: Record<string, string[]>;
  parent_job_id?: string | null;
  created_at: string;
  trace_id?: string;
  last_event_seq: number;
};

/** Sends session.list_jobs and waits for the answer to that request. */
async function list(c: WsClient, payload: Record<string, unknown> = {}): Promise<Env> {
  const req = c.send("session.list_jobs", payload);
  return await c.next(
    (e) =>
      (e.type === "session.jobs" && e.payload.request_id === req.id) || e.type === "session.error",
    10_000,
    "session.jobs",
  );
}

/** Lists every page with `limit`, returning the job ids in order. */
async function listAll(
  c: WsClient,
  payload: Record<string, unknown> = {},
  between?: (page: number) => Promise<void>,
): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 100; page++) {
    const res = await list(c, { ...payload, ...(cursor ? { cursor } : {}) });
    equal(res.type, "session.jobs", JSON.stringify(res.payload));
    ids.push(...res.payload.jobs.map((j: Entry) => j.job_id));
    cursor = res.payload.next_cursor;
    if (cursor === null) return ids;
    await between?.(page);
  }
  throw new Error("paging did not end");
}

/** Submits echo jobs one after another, each to completion. */
async function echoJobs(c: WsClient, n: number, agent = "echo"): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const acc = await c.submit({ agent, input: i });
    equal(acc.type, "job.accepted");
    await c.untilTerminal(acc.job_id!);
    ids.push(acc.job_id!);
  }
  return ids;
}

Deno.test("list_jobs echoes the request id and lists entries of the documented shape", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const trace = traceId();
  const acc = await c.submit({
    agent: "echo@1.0.0",
    input: "x",
    lease_request: { "net.fetch": ["https://example.com/**"] },
  }, { trace_id: trace });
  const all = await c.untilTerminal(acc.job_id!);
  const req = c.send("session.list_jobs", {});
  const res = await c.next((e) => e.type === "session.jobs");
  equal(res.payload.request_id, req.id);
  equal(res.session_id, c.sessionId);
  equal(res.event_seq, undefined);
  equal(res.payload.next_cursor, null);
  equal(res.payload.jobs.length, 1);
  const entry: Entry = res.payload.jobs[0];
  equal(entry.job_id, acc.job_id);
  equal(entry.agent, "echo@1.0.0");
  equal(entry.status, "success");
  deepEqual(entry.lease, acc.payload.lease);
  deepEqual(entry.lease, { "net.fetch": ["https://example.com/**"] });
  match(entry.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
  equal(entry.trace_id, trace);
  equal(entry.last_event_seq, all.at(-1)!.event_seq);
  ok(entry.parent_job_id === undefined || entry.parent_job_id === null);
});

Deno.test("list_jobs filters by a list of states", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const [ok1] = await echoJobs(c, 1);
  const failed = await c.submit({ agent: "failer", input: { message: "x" } });
  await c.untilTerminal(failed.job_id!);
  const running = await c.submit({ agent: "sleeper", input: { ms: 30_000 } });
  await c.next((e) => e.job_id === running.job_id && e.payload?.body?.phase === "sleeping");

  const ids = async (status: string[]) =>
    (await list(c, { filter: { status } })).payload.jobs.map((j: Entry) => j.job_id);
  deepEqual(await ids(["success"]), [ok1]);
  deepEqual(await ids(["error"]), [failed.job_id]);
  deepEqual(await ids(["running"]), [running.job_id]);
  deepEqual(await ids(["success", "running"]), [ok1, running.job_id]);
  deepEqual(await ids(["cancelled", "timed_out"]), []);
  const bad = await list(c, { filter: { status: ["finished"] } });
  equal(bad.type, "session.error");
  equal(bad.payload.code, "INVALID_REQUEST");
  match(bad.payload.message, /status/);
});

Deno.test("list_jobs filters by agent: a bare name matches every version, name@version only that one", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const v1 = await echoJobs(c, 1, "echo@1.0.0");
  const v2 = await echoJobs(c, 1, "echo@2.0.0");
  const tick = await c.submit({ agent: "ticker", input: { count: 1 } });
  await c.untilTerminal(tick.job_id!);
  const ids = async (agent: string) =>
    (await list(c, { filter: { agent } })).payload.jobs.map((j: Entry) => j.job_id);
  deepEqual(await ids("echo"), [...v1, ...v2]);
  deepEqual(await ids("echo@1.0.0"), v1);
  deepEqual(await ids("echo@2.0.0"), v2);
  deepEqual(await ids("ticker"), [tick.job_id]);
  deepEqual(await ids("ech"), []);
  deepEqual(await ids("echo@3.0.0"), []);
});

Deno.test("list_jobs filters by created_after and created_before", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    ids.push(...await echoJobs(c, 1));
    await new Promise((r) => setTimeout(r, 30));
  }
  const entries: Entry[] = (await list(c)).payload.jobs;
  deepEqual(entries.map((e) => e.job_id), ids);
  const ms = entries.map((e) => Date.parse(e.created_at));
  ok(ms[0] < ms[1] && ms[1] < ms[2]);
  const mid = (a: number, b: number) => new Date(Math.floor((a + b) / 2)).toISOString();
  const after = mid(ms[0], ms[1]);
  const before = mid(ms[1], ms[2]);
  const f = async (filter: Record<string, string>) =>
    (await list(c, { filter })).payload.jobs.map((j: Entry) => j.job_id);
  deepEqual(await f({ created_after: after }), [ids[1], ids[2]]);
  deepEqual(await f({ created_before: before }), [ids[0], ids[1]]);
  deepEqual(await f({ created_after: after, created_before: before }), [ids[1]]);
  deepEqual(await f({ created_after: new Date(ms[2] + 1000).toISOString() }), []);
  const bad = await list(c, { filter: { created_after: "yesterday" } });
  equal(bad.type, "session.error");
  equal(bad.payload.code, "INVALID_REQUEST");
  match(bad.payload.message, /created_after/);
});

Deno.test("limit and cursor page through 25 jobs 10 at a time with no skips or repeats", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const ids = await echoJobs(c, 25);
  const first = await list(c, { limit: 10 });
  equal(first.payload.jobs.length, 10);
  equal(typeof first.payload.next_cursor, "string");
  const second = await list(c, { limit: 10, cursor: first.payload.next_cursor });
  equal(second.payload.jobs.length, 10);
  const third = await list(c, { limit: 10, cursor: second.payload.next_cursor });
  equal(third.payload.jobs.length, 5);
  equal(third.payload.next_cursor, null);
  deepEqual(
    [first, second, third].flatMap((p) => p.payload.jobs.map((j: Entry) => j.job_id)),
    ids,
  );
});

Deno.test("paging neither skips nor repeats while new jobs are added between pages", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const ids = await echoJobs(c, 25);
  const added: string[] = [];
  const seen = await listAll(c, { limit: 10 }, async () => {
    added.push(...await echoJobs(c, 2));
  });
  equal(new Set(seen).size, seen.length, "a job was listed twice");
  deepEqual(seen.slice(0, 25), ids);
  // Jobs created after the listing began sort after every earlier one, so they show up too.
  deepEqual(seen.slice(25), added.slice(0, seen.length - 25));
  ok(seen.length > 25);
});

Deno.test("a principal never sees another principal's jobs", async () => {
  await using server = await startServer();
  await using alice = await connect(server.url, "alice-token");
  await using bob = await connect(server.url, "bob-token");
  const aliceJobs = await echoJobs(alice, 3);
  const bobJobs = await echoJobs(bob, 2);
  deepEqual(await listAll(bob, { limit: 1 }), bobJobs);
  deepEqual(await listAll(alice), aliceJobs);
  deepEqual(
    (await list(bob, { filter: { agent: "echo", status: ["success"] } })).payload.jobs
      .map((j: Entry) => j.job_id),
    bobJobs,
  );
  // Another session of alice sees alice's jobs (scope is the principal, not the session).
  await using alice2 = await connect(server.url, "alice-token");
  deepEqual(await listAll(alice2), aliceJobs);
});

Deno.test("a cursor this runtime did not issue is session.error INVALID_REQUEST naming the cursor", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  await echoJobs(c, 1);
  for (const cursor of ["not-a-cursor", btoa("[1,2,3"), btoa('{"a":1}')]) {
    const res = await list(c, { cursor });
    equal(res.type, "session.error", cursor);
    equal(res.payload.code, "INVALID_REQUEST");
    match(res.payload.message, /cursor/);
  }
  // The session goes on.
  equal((await list(c)).payload.jobs.length, 1);
});

Deno.test("session.list_jobs without the list_jobs feature is INVALID_REQUEST", async () => {
  await using server = await startServer();
  await using c = await connect(server.url, "alice-token", ["progress"]);
  const res = await list(c);
  equal(res.type, "session.error");
  equal(res.payload.code, "INVALID_REQUEST");
  match(res.payload.message, /list_jobs/);
});
