import { deepEqual, equal, ok } from "assert";
import { Store } from "../../src/store/store.ts";
import { Sweeper } from "../../src/store/sweeper.ts";
import { logEntries } from "../../src/store/large_value.ts";
import type { JobRecord, SessionRecord } from "../../src/store/records.ts";
import { startServer } from "../../testing/server.ts";
import { connect, type WsClient } from "../../testing/ws_client.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SHA-256 hex, as idempotency keys are stored. */
async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every KV entry under a prefix. */
async function count(kv: Deno.Kv, prefix: Deno.KvKey): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix })) n++;
  return n;
}

/** The seqs a session's KV log holds (head entries only). */
async function loggedSeqs(kv: Deno.Kv, sessionId: string): Promise<number[]> {
  const seqs: number[] = [];
  for await (const e of kv.list({ prefix: ["v1", "slog", sessionId] })) {
    if (e.key.length !== 4) continue;
    const seq = e.key[3] as number;
    // Entries committed together share one value (an array), stored under the last one's seq.
    if (Array.isArray(e.value)) seqs.push(...logEntries(seq, e.value).map(([n]) => n));
    else seqs.push(seq);
  }
  return seqs;
}

function sessionRecord(id: string, extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    session_id: id,
    principal: "alice",
    created_at: new Date().toISOString(),
    last_seq: 0,
    acked_seq: 0,
    floor_seq: 0,
    resume_token_hash: "00",
    features: [],
    ...extra,
  };
}

function jobRecord(id: string, extra: Partial<JobRecord> = {}): JobRecord {
  const now = Date.now();
  return {
    job_id: id,
    principal: "alice",
    session_id: "sess_x",
    agent: "echo@2.0.0",
    status: "running",
    lease: {},
    trace_id: "0".repeat(32),
    created_at: new Date(now).toISOString(),
    created_ms: now,
    accepted_at: new Date(now).toISOString(),
    last_event_seq: 0,
    log_length: 0,
    ...extra,
  };
}

/** A store in a fresh temp dir. */
async function tempStore(): Promise<{ store: Store; path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_sweep_" });
  const path = `${dir}/arcp.kv`;
  const store = await Store.open({ path });
  return {
    store,
    path,
    async [Symbol.asyncDispose]() {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("sweeper rules: window, held sessions, crashed-while-attached sessions, key TTLs, history TTL", async () => {
  await using db = await tempStore();
  const { store } = db;
  const kv = store.kv;
  const windowMs = 10_000;
  const ttl = 3_600_000;
  let clock = Date.now();
  const held = new Set(["sess_held"]);
  const sweeper = new Sweeper({
    store,
    intervalMs: 60_000,
    resumeWindowMs: windowMs,
    jobHistoryTtlMs: 60_000,
    isHeld: (id) => held.has(id),
    now: () => clock,
    batchSize: 100,
  });
  const start = clock;
  // Sessions, each with a log of 3 envelopes (one of them large, stored in parts).
  const big = "é".repeat(70_000);
  const sessions: Array<[string, Partial<SessionRecord>]> = [
    ["sess_expired", { detached_at: start - windowMs - 1 }],
    ["sess_in_window", { detached_at: start - windowMs / 2 }],
    ["sess_held", { detached_at: start - 10 * windowMs }],
    ["sess_crashed", {}],
  ];
  for (const [id, extra] of sessions) {
    await store.write([
      store.sessionWrite(sessionRecord(id, { last_seq: 3, ...extra }), ttl),
      ...store.sessionLogWrites(id, 1, "one", ttl),
      ...store.sessionLogWrites(id, 2, big, ttl),
      ...store.sessionLogWrites(id, 3, "three", ttl),
    ]);
  }
  ok(await count(kv, ["v1", "slog", "sess_expired"]) > 3, "the big envelope was not split");
  // Idempotency keys: one lapsed, one live, one from before expires_at existed.
  const lapsed = jobRecord("job_lapsed");
  ok(
    await store.createJob(lapsed, {
      principal: "alice",
      keyHash: "h-lapsed",
      record: { job_id: "job_lapsed", params_hash: "p" },
      ttlMs: 1000,
    }),
  );
  ok(
    await store.createJob(jobRecord("job_keyed"), {
      principal: "alice",
      keyHash: "h-live",
      record: { job_id: "job_keyed", params_hash: "p" },
      ttlMs: ttl,
    }),
  );
  await kv.set(["v1", "idem", "alice", "h-legacy"], { job_id: "job_old", params_hash: "p" });
  // Job histories: one ended long ago, one just now, one still running.
  const longAgo = new Date(start - 120_000).toISOString();
  const justNow = new Date(start).toISOString();
  const jobs: Array<[string, Partial<JobRecord>]> = [
    ["job_old_end", { status: "success", ended_at: longAgo }],
    ["job_new_end", { status: "error", ended_at: justNow }],
    ["job_running", {}],
  ];
  for (const [id, extra] of jobs) {
    await store.write([
      ...store.jobWrites(jobRecord(id, extra)),
      ...store.jobLogWrites(id, 0, "first"),
      ...store.jobLogWrites(id, 1, big),
    ]);
  }
  equal(await count(kv, ["v1", "ended"]), 2, "terminal jobs are indexed by end time");

  // The lapsed key reads as missing before any sweep (KV's own expiry is only eventual).
  clock = start + 2000;
  await sleep(1100);
  equal(await store.getIdempotency("alice", "h-lapsed"), null);
  ok((await store.getIdempotency("alice", "h-live")) !== null);

  const first = await sweeper.sweep();
  equal(first.truncated, false);
  equal(first.sessions, 1);
  equal(first.idempotencyKeys, 1);
  equal(first.jobHistories, 1);
  // The expired session is gone with its whole log, parts included.
  equal((await kv.get(["v1", "sess", "sess_expired"])).value, null);
  equal(await count(kv, ["v1", "slog", "sess_expired"]), 0);
  equal(await count(kv, ["v1", "swept"]), 0);
  // In its window, held in memory, or crashed-while-attached less than a
  // window after this process started: everything kept.
  for (const id of ["sess_in_window", "sess_held", "sess_crashed"]) {
    ok((await kv.get(["v1", "sess", id])).value !== null, `${id} record was swept`);
    deepEqual(await loggedSeqs(kv, id), [1, 2, 3], `${id} log was touched`);
  }
  equal((await kv.get(["v1", "idem", "alice", "h-lapsed"])).value, null);
  ok((await kv.get(["v1", "idem", "alice", "h-live"])).value !== null);
  ok((await kv.get(["v1", "idem", "alice", "h-legacy"])).value !== null);
  equal(await count(kv, ["v1", "jlog", "job_old_end"]), 0);
  ok((await kv.get(["v1", "job", "job_old_end"])).value !== null, "the job record stays");
  ok(await count(kv, ["v1", "jlog", "job_new_end"]) > 2);
  ok(await count(kv, ["v1", "jlog", "job_running"]) > 2);
  equal(await count(kv, ["v1", "ended"]), 1);

  // Later: the window of the detached session and of the crashed one pass;
  // the held one stays as long as it is held.
  clock = start + windowMs + 5000;
  const second = await sweeper.sweep();
  equal(second.sessions, 2);
  for (const id of ["sess_in_window", "sess_crashed"]) {
    equal((await kv.get(["v1", "sess", id])).value, null);
    equal(await count(kv, ["v1", "slog", id]), 0);
  }
  deepEqual(await loggedSeqs(kv, "sess_held"), [1, 2, 3]);
  held.delete("sess_held");
  clock = start + 70_000;
  const third = await sweeper.sweep();
  equal(third.sessions, 1);
  equal(third.jobHistories, 1);
  equal(await count(kv, ["v1", "slog"]), 0);
  equal(await count(kv, ["v1", "sess"]), 0);
  equal(await count(kv, ["v1", "jlog", "job_new_end"]), 0);
  ok(await count(kv, ["v1", "jlog", "job_running"]) > 2, "a live job's history was swept");
  equal((await sweeper.sweep()).entries, 0);
});

Deno.test("a sweep deletes in bounded batches and a cut-short sweep is finished by the next", async () => {
  await using db = await tempStore();
  const { store } = db;
  const kv = store.kv;
  let clock = Date.now();
  const sweeper = new Sweeper({
    store,
    intervalMs: 60_000,
    resumeWindowMs: 1000,
    jobHistoryTtlMs: 1000,
    isHeld: () => false,
    now: () => clock,
    batchSize: 100,
    maxDeletesPerSweep: 450,
  });
  const n = 1200;
  for (let from = 1; from <= n; from += 400) {
    const writes = [];
    for (let i = from; i < from + 400; i++) {
      // Every other seq: entries next to each other in one commit would share
      // a value (large_value.ts), and this test needs 1200 entries.
      const seq = 2 * i;
      writes.push(...store.sessionLogWrites("sess_long", seq, `envelope ${seq}`, 3_600_000));
    }
    await store.write(writes);
  }
  await store.write([
    store.sessionWrite(
      sessionRecord("sess_long", { last_seq: 2 * n, detached_at: clock - 5000 }),
      3_600_000,
    ),
  ]);
  const commitsBefore = store.committer.commits;
  clock += 10;
  const first = await sweeper.sweep();
  equal(first.truncated, true);
  ok(first.entries <= 450, `${first.entries} deletes in a sweep capped at 450`);
  ok(store.committer.commits - commitsBefore >= 4, "deletes were not batched by 100");
  // The record is gone at once (no resume can find it); a tombstone marks the rest.
  equal((await kv.get(["v1", "sess", "sess_long"])).value, null);
  equal(await count(kv, ["v1", "swept"]), 1);
  ok(await count(kv, ["v1", "slog", "sess_long"]) > 0);
  let sweeps = 1;
  let report;
  do {
    report = await sweeper.sweep();
    sweeps++;
    ok(report.entries <= 450, `${report.entries} deletes in a sweep capped at 450`);
  } while (report.truncated);
  equal(sweeps, 3, `${sweeps} sweeps for ${n} entries at 450 a sweep`);
  equal(await count(kv, ["v1", "slog", "sess_long"]), 0);
  equal(await count(kv, ["v1", "swept"]), 0);
});

Deno.test("a record written after the sweeper read it is not swept", async () => {
  await using db = await tempStore();
  const { store } = db;
  let resumed = false;
  const sweeper = new Sweeper({
    store,
    intervalMs: 60_000,
    resumeWindowMs: 1000,
    jobHistoryTtlMs: 1000,
    // Simulates a resume that restores the session while the sweep decides.
    isHeld: (id) => {
      if (id === "sess_race" && !resumed) {
        resumed = true;
        return false;
      }
      return resumed;
    },
  });
  await store.write([
    store.sessionWrite(sessionRecord("sess_race", { detached_at: Date.now() - 5000 }), 60_000),
    ...store.sessionLogWrites("sess_race", 1, "kept", 60_000),
  ]);
  const report = await sweeper.sweep();
  equal(report.sessions, 0);
  ok((await store.getSession("sess_race")) !== null);
  deepEqual(await loggedSeqs(store.kv, "sess_race"), [1]);
  equal(await count(store.kv, ["v1", "swept"]), 0);
});

/**
 * Runs an echo job to its end. With a key, the submit is repeated as soon
 * as it is accepted and must replay: a moment into the key's TTL, however
 * long the job then takes on a busy machine.
 */
async function runEcho(c: WsClient, input: unknown, key?: string): Promise<string> {
  const submit = { agent: "echo", input, ...(key ? { idempotency_key: key } : {}) };
  const accepted = await c.submit(submit);
  equal(accepted.type, "job.accepted");
  if (key) {
    const replay = await c.submit(submit);
    equal(replay.job_id, accepted.job_id, "within its TTL the key replays");
  }
  const out = await c.untilTerminal(accepted.job_id!);
  equal(out.at(-1)!.type, "job.result");
  return accepted.job_id!;
}

Deno.test("a real runtime sweeps what lapsed and keeps sessions that are connected or inside their window", async () => {
  const server = await startServer({
    sessions: { resumeWindowSec: 1 },
    sweepIntervalMs: 200,
    jobHistoryTtlMs: 500,
    jobs: { idempotencyTtlMs: 500 },
  });
  try {
    // A: runs an idempotent job, then goes away for longer than its window.
    const a = await connect(server.url);
    const aSession = a.sessionId;
    const aJob = await runEcho(a, "a", "key-a");
    const aSeqs = a.seen.filter((e) => e.event_seq !== undefined).length;
    ok(aSeqs >= 2);
    await a.close();
    // B: stays connected all along, quiet for longer than the window.
    const b = await connect(server.url);
    const bSession = b.sessionId;
    await runEcho(b, "b");
    const bLast = b.seen.filter((e) => e.event_seq !== undefined).at(-1)!.event_seq!;
    await sleep(2200);
    // C: detaches a moment before the runtime stops: inside its window.
    const c = await connect(server.url);
    const cSession = c.sessionId;
    await runEcho(c, "c");
    const cLast = c.seen.filter((e) => e.event_seq !== undefined).at(-1)!.event_seq!;
    await c.close();
    await sleep(500); // two more sweeps, still inside C's 1 s window
    // B is still connected and answered.
    const nonce = "still-here";
    b.send("session.ping", { nonce, sent_at: new Date().toISOString() });
    await b.next((e) => e.type === "session.pong" && e.payload.ping_nonce === nonce);
    await server.close();
    await b.close();

    const kv = await Deno.openKv(server.kvPath);
    try {
      // A: record, log, job history and idempotency key are gone; the job record stays.
      equal((await kv.get(["v1", "sess", aSession])).value, null);
      equal(await count(kv, ["v1", "slog", aSession]), 0);
      equal(await count(kv, ["v1", "jlog", aJob]), 0);
      equal((await kv.get(["v1", "idem", "alice", await sha256Hex("key-a")])).value, null);
      equal((await kv.get<JobRecord>(["v1", "job", aJob])).value?.status, "success");
      // B (connected) and C (inside its window) keep their record and every envelope.
      for (const [id, last] of [[bSession, bLast], [cSession, cLast]] as const) {
        ok((await kv.get(["v1", "sess", id])).value !== null, `record of ${id} was swept`);
        deepEqual(
          await loggedSeqs(kv, id),
          Array.from({ length: last }, (_, i) => i + 1),
          `log of ${id} was touched`,
        );
      }
      equal(await count(kv, ["v1", "swept"]), 0);
    } finally {
      kv.close();
    }
  } finally {
    await server.close(true);
  }
});

Deno.test("an idempotent resubmit after the key's TTL creates a new job, even before the key is swept", async () => {
  // Sweeping off: the lapsed key is still in KV when the resubmit comes.
  // Long enough that the replay below lands inside it on a busy machine.
  const ttlMs = 5000;
  const server = await startServer({ sweepIntervalMs: 0, jobs: { idempotencyTtlMs: ttlMs } });
  try {
    const c = await connect(server.url);
    const submit = { agent: "echo", input: "same", idempotency_key: "ttl-key" };
    const claimed = Date.now();
    const first = await runEcho(c, "same", "ttl-key");
    equal((await c.submit(submit)).job_id, first);
    await sleep(Math.max(0, claimed + ttlMs + 200 - Date.now()));
    const second = await runEcho(c, "same", "ttl-key");
    ok(second !== first, "a lapsed key replayed the old job");
    // The key now names the new job, and replays it.
    equal((await c.submit(submit)).job_id, second);
    // A different input under the lapsed-then-reclaimed key is a DUPLICATE_KEY.
    const dup = await c.submit({ ...submit, input: "other" });
    equal(dup.type, "job.error");
    equal(dup.payload.code, "DUPLICATE_KEY");
    equal(dup.payload.details.existing_job_id, second);
    await c.close();
    await server.close();
    const kv = await Deno.openKv(server.kvPath);
    try {
      const rec = (await kv.get<{ job_id: string; expires_at: number }>(
        ["v1", "idem", "alice", await sha256Hex("ttl-key")],
      )).value;
      equal(rec?.job_id, second);
      equal(typeof rec?.expires_at, "number");
    } finally {
      kv.close();
    }
  } finally {
    await server.close(true);
  }
});

Deno.test("finished jobs lose their history, then their record, index entries and key; live jobs, re-claimed keys and recent audit entries stay", async () => {
  await using db = await tempStore();
  const { store } = db;
  const kv = store.kv;
  const start = Date.now();
  let clock = start;
  const sweeperWith = (jobRetentionMs: number, auditRetentionMs: number) =>
    new Sweeper({
      store,
      intervalMs: 60_000,
      resumeWindowMs: 1000,
      jobHistoryTtlMs: 10_000,
      jobRetentionMs,
      auditRetentionMs,
      isHeld: () => false,
      now: () => clock,
    });
  const ended = (ms: number) => new Date(ms).toISOString();
  // Ended long ago with a key; ended long ago, its key since re-claimed by a newer job; ended
  // recently; running; and a live record with a stale end-time entry (which must not happen,
  // and must not cost the job if it does).
  const jobs: Array<[string, Partial<JobRecord>]> = [
    ["job_old", { status: "success", ended_at: ended(start - 60_000), idempotency_hash: "h-old" }],
    ["job_reclaimed", {
      status: "error",
      ended_at: ended(start - 60_000),
      idempotency_hash: "h-re",
    }],
    ["job_recent", { status: "cancelled", ended_at: ended(start - 1000) }],
    ["job_running", {}],
  ];
  for (const [id, extra] of jobs) {
    await store.write([
      ...store.jobWrites(jobRecord(id, extra)),
      ...store.jobLogWrites(id, 0, "e"),
    ]);
  }
  await kv.set(["v1", "idem", "alice", "h-old"], { job_id: "job_old", params_hash: "p" });
  await kv.set(["v1", "idem", "alice", "h-re"], { job_id: "job_new", params_hash: "p" });
  await kv.set(["v1", "ended", start - 60_000, "job_running"], "sess_x");
  for (const [id, at] of [["a_old", start - 40_000], ["a_new", start - 1000]] as const) {
    await store.write([store.auditWrite({
      id,
      at,
      subscriber_principal: "alice",
      subscriber_session: "sess_y",
      job_id: "job_old",
      decision: "granted",
    })]);
  }
  const listed = async () =>
    (await store.listJobs("alice", { limit: 100 })).jobs.map((j) => j.job_id).sort();

  // Retention of 0 in the runtime is Infinity here: nothing but histories goes.
  const forever = await sweeperWith(Infinity, Infinity).sweep();
  equal(forever.jobs, 0);
  equal(forever.auditEntries, 0);
  equal(forever.jobHistories, 2, "histories past their TTL");
  deepEqual(await listed(), ["job_old", "job_recent", "job_reclaimed", "job_running"]);
  equal(await count(kv, ["v1", "jlog", "job_old"]), 0);
  equal(await count(kv, ["v1", "jlog", "job_recent"]), 1);
  equal(await count(kv, ["v1", "jlog", "job_running"]), 1, "a live job's history was swept");
  equal(await count(kv, ["v1", "kept"]), 2, "records whose history went wait in the second stage");
  equal(await count(kv, ["v1", "ended"]), 1, "the recent job waits for its history TTL");

  const report = await sweeperWith(30_000, 30_000).sweep();
  equal(report.jobs, 2);
  equal(report.auditEntries, 1);
  deepEqual(await listed(), ["job_recent", "job_running"]);
  for (const id of ["job_old", "job_reclaimed"]) {
    equal((await kv.get(["v1", "job", id])).value, null);
  }
  // What is left in the indexes: the recent job's entries and the running job's live one.
  equal(await count(kv, ["v1", "pjs", "alice"]), 1, "index entries of deleted jobs");
  equal(await count(kv, ["v1", "pja", "alice"]), 1, "index entries of deleted jobs");
  equal(await count(kv, ["v1", "plive", "alice"]), 1, "the running job's live entry");
  equal((await kv.get(["v1", "idem", "alice", "h-old"])).value, null, "the key of a deleted job");
  deepEqual(
    (await kv.get(["v1", "idem", "alice", "h-re"])).value,
    { job_id: "job_new", params_hash: "p" },
    "a key that names another job now",
  );
  equal((await store.getJob("job_running"))?.status, "running");
  deepEqual(await store.liveJobIdsOf("sess_x"), ["job_running"]);
  deepEqual(
    (await Array.fromAsync(store.audit())).map((a) => a.id),
    ["a_new"],
  );
  equal(await count(kv, ["v1", "kept"]), 0);

  // Past both periods at once: history and job go in one sweep.
  clock = start + 60_000;
  const later = await sweeperWith(30_000, 30_000).sweep();
  equal(later.jobHistories, 1);
  equal(later.jobs, 1);
  equal(later.auditEntries, 1);
  deepEqual(await listed(), ["job_running"]);
  equal(await count(kv, ["v1", "ended"]), 0);
  equal(await count(kv, ["v1", "jlog", "job_running"]), 1);
  equal((await sweeperWith(30_000, 30_000).sweep()).entries, 0);
});
