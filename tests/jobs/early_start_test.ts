/**
 * Early start: a submit that claims nothing starts its job while the job's
 * record commits (held a few milliseconds, for agents whose jobs end fast,
 * so record, events and terminal share one commit). What the client sees
 * must not change: `job.accepted` only once the record is durable, nothing of
 * the job before it, and a job whose record cannot be committed is refused
 * as any submit is when storage fails, nothing of it ever sent.
 */
import { deepEqual, equal, ok } from "assert";
import { tempKv } from "../../testing/temp_dir.ts";
import { type ChildServer, ROOT, startChildServer, startServer } from "../../testing/server.ts";
import { connect, type Env, traceId, type WsClient } from "../../testing/ws_client.ts";

/** Agents whose workers serve successive jobs (`reuser`). */
const REUSED = `${ROOT}/tests/fixtures/sharing`;

/** Every job id the client saw, with the type of the first envelope naming it. */
function firstOfEachJob(seen: readonly Env[]): Map<string, string> {
  const first = new Map<string, string>();
  for (const e of seen) {
    if (e.job_id !== undefined && !first.has(e.job_id)) first.set(e.job_id, e.type);
  }
  return first;
}

/** Lists every job of the session's principal, page by page. */
async function listAll(c: WsClient): Promise<Set<string>> {
  const ids = new Set<string>();
  let cursor: string | null | undefined;
  do {
    const req = c.send("session.list_jobs", { limit: 1000, ...(cursor ? { cursor } : {}) });
    const page = await c.next(
      (e) => e.type === "session.jobs" && e.payload.request_id === req.id,
      30_000,
      "session.jobs",
    );
    for (const j of page.payload.jobs) ids.add(j.job_id);
    cursor = page.payload.next_cursor;
  } while (cursor);
  return ids;
}

/**
 * Holds the write lock of a KV file from another process (`sqlite3`), as a
 * second writer would: commits wait (KV retries a locked database for up
 * to 5 s, then reports storage failing); reads go on.
 */
async function lockKv(kvPath: string): Promise<{ release(): Promise<void> }> {
  const proc = new Deno.Command("sqlite3", {
    args: [kvPath],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = proc.stdin.getWriter();
  const enc = new TextEncoder();
  await writer.write(enc.encode("BEGIN IMMEDIATE;\nSELECT 'locked';\n"));
  const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("locked")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("sqlite3 exited before taking the lock");
    out += value;
  }
  return {
    async release() {
      await writer.write(enc.encode("COMMIT;\n.quit\n"));
      await writer.close();
      reader.releaseLock();
      await proc.stdout.cancel().catch(() => {});
      await proc.status;
    },
  };
}

/** Waits until the runtime reports `n` live jobs. */
async function untilLive(http: string, n: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const health = await fetch(`${http}/healthz`).then((r) => r.json());
    if (health.live_jobs === n) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`never ${n} live jobs`);
}

/** Waits until the runtime reports its storage working. */
async function untilStorageOk(http: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const health = await fetch(`${http}/healthz`).then((r) => r.json());
    if (health.storage.ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("storage never recovered");
}

Deno.test("SIGKILL amid back-to-back short jobs: every job the client heard of has its record after a restart, and no envelope of a job came before its job.accepted", async () => {
  await using tmp = await tempKv("arcp_early_");
  const { kvPath } = tmp;
  let child: ChildServer | undefined;
  try {
    child = await startChildServer(kvPath);
    const c = await connect(child.url);
    // Jobs that end fast earn their agent the record hold: the later ones commit in one go.
    for (let i = 0; i < 20; i++) {
      const acc = await c.submit({ agent: "echo", input: i });
      equal((await c.untilTerminal(acc.job_id!)).at(-1)!.type, "job.result");
    }
    // Eight submitters on the session, each one job after another, killed
    // while jobs are being accepted, run and ended.
    let accepted = 0;
    let killed = false;
    const submitter = async (k: number) => {
      for (let i = 0; !killed; i++) {
        const answer = await c.submit({ agent: "echo", input: `${k}.${i}` });
        if (answer.type !== "job.accepted") continue;
        accepted++;
        await c.untilTerminal(answer.job_id!);
      }
    };
    const loops = Array.from({ length: 8 }, (_, k) => submitter(k).catch(() => {}));
    while (accepted < 80) await new Promise((r) => setTimeout(r, 5));
    killed = true;
    equal((await child.stop("SIGKILL")).signal, "SIGKILL");
    child = undefined;
    await c.closed();
    await Promise.all(loops);

    const first = firstOfEachJob(c.seen);
    const heard: string[] = [];
    for (const [id, type] of first) {
      const all = c.seen.filter((e) => e.job_id === id);
      if (type === "job.accepted") heard.push(id);
      // Else a refused submit (its job.error, under a job id of its own), and nothing else.
      else deepEqual(all.map((e) => [e.type, e.payload.final_status]), [["job.error", "error"]]);
    }
    ok(heard.length >= 100, `${heard.length} jobs heard of`);
    const results = c.seen.filter((e) => e.type === "job.result").length;
    ok(results >= 20, `${results} results before the kill`);

    child = await startChildServer(kvPath);
    const again = await connect(child.url);
    const listed = await listAll(again);
    for (const id of heard) ok(listed.has(id), `${id} was accepted but has no record`);
    await again.close();
  } finally {
    await child?.stop("SIGKILL");
  }
});

Deno.test("a session.list_jobs while another session's job record is held waits for it and lists the job", async () => {
  // A hold far longer than the test: the record waits for the job's first envelope.
  await using server = await startServer({
    jobs: { acceptHoldMs: 60_000, acceptHoldFastMs: 60_000 },
  });
  const a = await connect(server.url);
  const b = await connect(server.url);
  try {
    // The agent's jobs end fast: its next record is held.
    const warm = await a.submit({ agent: "sleeper", input: { ms: 1 } });
    equal((await a.untilTerminal(warm.job_id!)).at(-1)!.type, "job.result");
    const trace = traceId();
    a.send("job.submit", { agent: "sleeper", input: { ms: 60_000 } }, { trace_id: trace });
    await untilLive(server.http, 1);
    const req = b.send("session.list_jobs", {});
    const jobs = await b.next(
      (e) => e.type === "session.jobs" && e.payload.request_id === req.id,
      10_000,
      "session.jobs",
    );
    const accepted = await a.next((e) => e.trace_id === trace, 10_000, "job.accepted");
    equal(accepted.type, "job.accepted");
    deepEqual(
      jobs.payload.jobs.map((j: { job_id: string }) => j.job_id).sort(),
      [
        accepted.job_id,
        warm.job_id,
      ].sort(),
    );
    // Nothing of the job reached its session ahead of its job.accepted.
    equal(firstOfEachJob(a.seen).get(accepted.job_id!), "job.accepted");
    a.send("job.cancel", {}, { job_id: accepted.job_id });
    equal((await a.untilTerminal(accepted.job_id!)).at(-1)!.payload.code, "CANCELLED");
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test({
  name:
    "a job whose record cannot be committed is refused like any submit while storage fails, its agent stopped, nothing of it sent",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using server = await startServer();
    const a = await connect(server.url);
    const warm = await a.submit({ agent: "echo", input: "warm" });
    equal((await a.untilTerminal(warm.job_id!)).at(-1)!.type, "job.result");
    const lock = await lockKv(server.kvPath);
    let released = false;
    try {
      const trace = traceId();
      // Long enough to be running when its record's commit gives up (KV retries a lock 5 s).
      a.send("job.submit", { agent: "sleeper", input: { ms: 60_000 } }, { trace_id: trace });
      await untilLive(server.http, 1);
      const refusal = await a.next((e) => e.trace_id === trace, 20_000, "refusal");
      equal(refusal.type, "session.error", JSON.stringify(refusal));
      equal(refusal.payload.code, "INTERNAL_ERROR");
      equal(refusal.payload.retryable, true);
      equal(refusal.payload.details?.storage, "failing");
      // Its agent was stopped: nothing is live.
      await untilLive(server.http, 0);
      released = true;
      await lock.release();
      await untilStorageOk(server.http);

      // Storage works again: new work runs, and the session's stream never skipped a seq.
      const after = await a.submit({ agent: "echo", input: "after" });
      equal(after.type, "job.accepted");
      equal((await a.untilTerminal(after.job_id!)).at(-1)!.type, "job.result");
      const seqs = a.seen.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq);
      deepEqual(seqs, seqs.map((_, i) => i + 1));
      // Nothing named the refused job: no envelope carries its trace but the refusal, and
      // the seqs its envelopes had taken were filled under a job id of their own.
      deepEqual(a.seen.filter((e) => e.trace_id === trace).map((e) => e.type), ["session.error"]);
      for (const [id, type] of firstOfEachJob(a.seen)) {
        if (type === "job.accepted") continue;
        for (const e of a.seen.filter((e) => e.job_id === id)) {
          deepEqual([e.type, e.payload.kind, e.payload.body.level], ["job.event", "log", "error"]);
        }
      }
    } finally {
      if (!released) await lock.release();
      await a.close();
    }
  },
});

Deno.test("a session's envelopes keep their seq order while its new jobs' records commit: a busy job beside them loses nothing, nor do they", async () => {
  await using server = await startServer();
  const a = await connect(server.url);
  try {
    const ticker = await a.submit({ agent: "ticker", input: { count: 3000, interval_ms: 1 } });
    equal(ticker.type, "job.accepted");
    for (let i = 0; i < 40; i++) {
      const acc = await a.submit({ agent: "echo", input: i });
      equal(acc.type, "job.accepted");
      const out = await a.untilTerminal(acc.job_id!);
      equal(out.at(-1)!.type, "job.result");
      equal(out[0].payload.body?.phase, "running");
    }
    const end = await a.untilTerminal(ticker.job_id!, 60_000);
    equal(end.at(-1)!.type, "job.result");
    const ticks = a.seen.filter((e) =>
      e.job_id === ticker.job_id && e.payload?.kind === "progress"
    );
    equal(ticks.length, 3000);
    const seqs = a.seen.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq);
    deepEqual(seqs, seqs.map((_, i) => i + 1));
    for (const [id, type] of firstOfEachJob(a.seen)) equal(type, "job.accepted", id);
  } finally {
    await a.close();
  }
});

/** One mutation of a commit: what it did to which key, and the value it set. */
type Mutation = ["set" | "delete", Deno.KvKey, unknown];

/**
 * Records every atomic commit this process makes (the in-process runtime's
 * among them) until disposed: what the store writes, seen where KV takes it.
 */
function recordCommits(): { commits: Mutation[][] } & Disposable {
  const proto = Deno.AtomicOperation.prototype;
  const { set, delete: del, commit } = proto;
  const ops = new WeakMap<Deno.AtomicOperation, Mutation[]>();
  const commits: Mutation[][] = [];
  const of = (op: Deno.AtomicOperation) => {
    let list = ops.get(op);
    if (!list) ops.set(op, list = []);
    return list;
  };
  proto.set = function (key, value, options) {
    of(this).push(["set", key, value]);
    return set.call(this, key, value, options);
  };
  proto.delete = function (key) {
    of(this).push(["delete", key, undefined]);
    return del.call(this, key);
  };
  proto.commit = async function () {
    const res = await commit.call(this);
    if (res.ok) commits.push(of(this));
    return res;
  };
  return {
    commits,
    [Symbol.dispose]() {
      Object.assign(proto, { set, delete: del, commit });
    },
  };
}

Deno.test("a job accepted and ended in one commit never has its live entry written; a job committed live then ended has it written, then deleted; none is left, before or after a restart", async () => {
  using recorded = recordCommits();
  await using tmp = await tempKv("arcp_live_entry_");
  // A record held until the job's first envelope, and a `running` that waits for the job's
  // next envelope as long: a short job's record commits with its terminal however slow the host
  // (beside two CPU hogs, a 20 ms wait for `running` ran out before every result).
  const jobs = { acceptHoldMs: 60_000, acceptHoldFastMs: 60_000, runningWaitMs: 60_000 };
  // A record is held for jobs of an agent whose jobs found a worker ready; a reused worker is
  // ready for the next job at once, where a fresh one may still be loading on a loaded host.
  const server = await startServer({ kvPath: tmp.kvPath, agentsDir: REUSED, jobs });
  const ids: string[] = [];
  try {
    const c = await connect(server.url);
    // The agent's first job is not held (nothing known of it): committed live, then ended.
    for (let i = 0; i < 10; i++) {
      const acc = await c.submit({ agent: "reuser", input: null });
      equal((await c.untilTerminal(acc.job_id!)).at(-1)!.type, "job.result");
      ids.push(acc.job_id!);
    }
    await c.close();
  } finally {
    await server.close();
  }
  const live = (key: Deno.KvKey, id: string) => key[1] === "plive" && key.at(-1) === id;
  let oneCommit = 0;
  for (const id of ids) {
    const commits = recorded.commits.filter((m) =>
      m.some(([op, key]) => op === "set" && key[1] === "job" && key[2] === id)
    );
    const first = commits[0].find(([op, key]) => op === "set" && key[1] === "job" && key[2] === id);
    const liveWrites = recorded.commits.flatMap((m) =>
      m.filter(([, key]) => live(key, id)).map(([op]) => `${op} in ${commits.indexOf(m)}`)
    );
    const terminal = commits.findIndex((m) =>
      m.some(([op, key, value]) =>
        op === "set" && key[1] === "job" && key[2] === id &&
        (value as { status: string }).status === "success"
      )
    );
    if ((first![2] as { status: string }).status === "success") {
      oneCommit++;
      // No write of its live entry, not even a delete of the entry that is not there.
      deepEqual(liveWrites, [], id);
    } else {
      // Its record's first commit wrote its live entry; its terminal's deleted it.
      deepEqual(liveWrites, ["set in 0", `delete in ${terminal}`], id);
    }
  }
  // The first job is committed live; the held ones take one commit, but for a job whose
  // worker was not ready (the reuser's worker retires every third job), whose record goes alone.
  ok(oneCommit >= 1 && oneCommit < ids.length, `${oneCommit} of ${ids.length}`);
  const kv = await Deno.openKv(tmp.kvPath);
  try {
    equal((await Array.fromAsync(kv.list({ prefix: ["v1", "plive"] }))).length, 0);
  } finally {
    kv.close();
  }
  // A restart reconciles no job: every one is listed as it ended, none live.
  await using again = await startServer({ kvPath: tmp.kvPath });
  const c = await connect(again.url);
  equal((await fetch(`${again.http}/healthz`).then((r) => r.json())).live_jobs, 0);
  deepEqual([...await listAll(c)].sort(), [...ids].sort());
  const req = c.send("session.list_jobs", { filter: { status: ["success"] } });
  const page = await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
  equal(page.payload.jobs.length, ids.length);
  await c.close();
});
