/**
 * A store written by layout 1 (one list index entry per job, no status or
 * agent index, no layout marker) is brought up to date at start, once:
 * filtered listings find its jobs, the old index is gone, and retention
 * reaches jobs whose end-time entry an earlier sweep had already consumed.
 */
import { deepEqual, equal, ok } from "assert";
import { tempKv } from "../../testing/temp_dir.ts";
import { startServer } from "../../testing/server.ts";
import { connect, type WsClient } from "../../testing/ws_client.ts";
import type { JobRecord } from "../../src/store/records.ts";
import { Store } from "../../src/store/store.ts";
import type { JobPosition } from "../../src/store/job_index.ts";
import type { Logger } from "../../src/logger.ts";

const T0 = Date.UTC(2026, 0, 1);

function legacyJob(i: number, status: string, agent: string): JobRecord {
  const created = T0 + i * 1000;
  const record = {
    job_id: `job_legacy_${String(i).padStart(3, "0")}`,
    principal: "alice",
    session_id: "sess_gone",
    agent,
    status,
    lease: {},
    trace_id: "0".repeat(32),
    created_at: new Date(created).toISOString(),
    created_ms: created,
    accepted_at: new Date(created).toISOString(),
    last_event_seq: 0,
    log_length: 0,
  } as JobRecord;
  if (status !== "running") record.ended_at = new Date(created + 500).toISOString();
  return record;
}

/** Writes the jobs as layout 1 did. `swept`: their end-time entries were consumed already. */
async function writeLegacy(path: string, jobs: JobRecord[], swept: Set<string>): Promise<void> {
  const kv = await Deno.openKv(path);
  try {
    for (const job of jobs) {
      const op = kv.atomic()
        .set(["v1", "job", job.job_id], job)
        .set(["v1", "pjob", job.principal, job.created_ms, job.job_id], job);
      if (job.status === "running") op.set(["v1", "live", job.job_id], job.session_id);
      else if (!swept.has(job.job_id)) {
        op.set(["v1", "ended", Date.parse(job.ended_at!), job.job_id], job.session_id);
      }
      await op.commit();
    }
  } finally {
    kv.close();
  }
}

async function listed(c: WsClient, filter?: Record<string, unknown>): Promise<string[]> {
  const req = c.send("session.list_jobs", filter ? { filter } : {});
  const res = await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
  return res.payload.jobs.map((j: { job_id: string }) => j.job_id);
}

async function count(path: string, prefix: Deno.KvKey): Promise<number> {
  const kv = await Deno.openKv(path);
  try {
    let n = 0;
    for await (const _ of kv.list({ prefix })) n++;
    return n;
  } finally {
    kv.close();
  }
}

/** A logger that keeps its info lines. */
function recorder(): Logger & { infos: string[] } {
  const infos: string[] = [];
  return {
    infos,
    info: (m, f) => infos.push(`${m} ${JSON.stringify(f ?? {})}`),
    warn() {},
    error() {},
  };
}

Deno.test("a layout-1 store is indexed at start, once, and its finished jobs come under retention", async () => {
  await using tmp = await tempKv("arcp_migrate_");
  const kvPath = tmp.kvPath;
  const jobs = [
    legacyJob(0, "success", "echo@1.0.0"),
    legacyJob(1, "error", "echo@2.0.0"),
    legacyJob(2, "success", "ticker@1.0.0"),
    legacyJob(3, "cancelled", "echo@2.0.0"),
    // Running when the old process died: recovery ends it at start.
    legacyJob(4, "running", "sleeper@1.0.0"),
  ];
  const ids = jobs.map((j) => j.job_id);
  await writeLegacy(kvPath, jobs, new Set([ids[0], ids[2]]));
  const first = recorder();
  // Closed, not disposed: disposing would remove the KV file.
  const server1 = await startServer({ kvPath, logger: first, sweepIntervalMs: 0 });
  try {
    const c = await connect(server1.url);
    deepEqual(await listed(c), ids);
    deepEqual(await listed(c, { status: ["success"] }), [ids[0], ids[2]]);
    deepEqual(await listed(c, { status: ["error"] }), [ids[1], ids[4]]);
    deepEqual(await listed(c, { agent: "echo" }), [ids[0], ids[1], ids[3]]);
    deepEqual(await listed(c, { agent: "echo@2.0.0", status: ["cancelled"] }), [ids[3]]);
    deepEqual(await listed(c, { status: ["running"] }), []);
    await c.close();
  } finally {
    await server1.close();
  }
  deepEqual(first.infos.filter((l) => l.startsWith("indexed existing jobs")), [
    'indexed existing jobs for session.list_jobs {"count":5}',
  ]);
  equal(await count(kvPath, ["v1", "pjob"]), 0, "the layout-1 index is gone");
  // Every finished job has its end-time entry again, those swept before included.
  equal(await count(kvPath, ["v1", "ended"]), 5);

  // Started again, with retention: nothing to migrate, and every finished job goes.
  const second = recorder();
  await using server = await startServer({
    kvPath,
    logger: second,
    sweepIntervalMs: 50,
    jobRetentionMs: 1,
  });
  await using c = await connect(server.url);
  for (let i = 0; i < 400 && (await listed(c)).length > 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  deepEqual(await listed(c), []);
  deepEqual(second.infos.filter((l) => l.startsWith("indexed existing jobs")), []);
  await server.close();
  for (const prefix of ["job", "pjs", "pja", "plive", "ended", "kept"]) {
    equal(await count(kvPath, ["v1", prefix]), 0, prefix);
  }
});

/** The listed fields of a record, as layout 2 kept them in its terminal index entries. */
function layout2Listed(job: JobRecord): Partial<JobRecord> {
  const { session_id: _s, accepted_at: _a, log_length: _l, ...listed } = job;
  return listed;
}

/**
 * Writes the jobs as layout 2 (commit 093a171) did: a live job in the
 * `"live"` bucket of both list_jobs indexes and in `[v1, "live", id]`, a
 * finished one in its status bucket of both and in the end-time index.
 * Layout 3 wrote finished jobs the same way (the listed fields in both
 * entries), so with `marker` 3 and finished jobs it writes a layout-3 store.
 */
async function writeLayout2(path: string, jobs: JobRecord[], marker = 2): Promise<void> {
  const kv = await Deno.openKv(path);
  try {
    for (const job of jobs) {
      const bare = job.agent.split("@")[0];
      const at = [job.created_ms, job.job_id];
      const op = kv.atomic().set(["v1", "job", job.job_id], job);
      if (job.status === "running") {
        op.set(["v1", "live", job.job_id], job.session_id)
          .set(["v1", "pjs", job.principal, "live", ...at], null)
          .set(["v1", "pja", job.principal, bare, "live", ...at], null);
      } else {
        op.set(["v1", "pjs", job.principal, job.status, ...at], layout2Listed(job))
          .set(["v1", "pja", job.principal, bare, job.status, ...at], layout2Listed(job))
          .set(["v1", "ended", Date.parse(job.ended_at!), job.job_id], job.session_id);
      }
      await op.commit();
    }
    await kv.set(["v1", "meta", "layout"], marker);
  } finally {
    kv.close();
  }
}

Deno.test("a layout-2 store reads the same after its live jobs move to one index entry each", async () => {
  await using tmp = await tempKv("arcp_migrate2_");
  const kvPath = tmp.kvPath;
  const jobs = [
    legacyJob(0, "success", "echo@1.0.0"),
    legacyJob(1, "running", "sleeper@1.0.0"),
    legacyJob(2, "error", "echo@2.0.0"),
    legacyJob(3, "running", "echo@2.0.0"),
  ];
  const ids = jobs.map((j) => j.job_id);
  await writeLayout2(kvPath, jobs);
  const store = await Store.open({ path: kvPath });
  try {
    equal(await store.migrate(), 2, "the two live jobs moved");
    equal(await store.migrate(), 0, "once");
    const page = async (q: Omit<Parameters<Store["listJobs"]>[1], "limit">) =>
      (await store.listJobs("alice", { ...q, limit: 10 })).jobs.map((j) => j.job_id);
    deepEqual(await page({}), ids);
    deepEqual(await page({ statuses: ["running"] }), [ids[1], ids[3]]);
    deepEqual(await page({ agent: "echo" }), [ids[0], ids[2], ids[3]]);
    deepEqual(await page({ agent: "echo@2.0.0", statuses: ["running"] }), [ids[3]]);
    deepEqual(await page({ agent: "sleeper", newestFirst: true }), [ids[1]]);
    deepEqual(await store.liveJobIdsOf("sess_gone"), [ids[1], ids[3]]);
    deepEqual((await Array.fromAsync(store.liveJobs())).map((j) => j.job_id), [ids[1], ids[3]]);
    for (const prefix of [["live"], ["pjs", "alice", "live"], ["pja", "alice", "echo", "live"]]) {
      equal(await count(kvPath, ["v1", ...prefix]), 0, `layout 2's ${prefix.join(" ")} entries`);
    }
  } finally {
    await store.close();
  }
  // Served: the jobs that were running when the old process died are ended at start,
  // which only works when the restart finds them through the moved entries.
  await using server = await startServer({ kvPath, sweepIntervalMs: 0 });
  await using c = await connect(server.url);
  deepEqual(await listed(c, { status: ["running"] }), []);
  deepEqual(await listed(c, { status: ["error"] }), [ids[1], ids[2], ids[3]]);
  deepEqual(await listed(c, { agent: "echo", status: ["error"] }), [ids[2], ids[3]]);
  await c.close();
  await server.close();
  equal(await count(kvPath, ["v1", "plive"]), 0, "no live entry is left");
});

Deno.test("a layout-3 store lists by agent the same beside the value-less agent entries layout 4 writes", async () => {
  await using tmp = await tempKv("arcp_migrate3_");
  const kvPath = tmp.kvPath;
  // Created long before anything the server will run, so they list first.
  const old = [
    legacyJob(0, "success", "echo@1.0.0"),
    legacyJob(1, "error", "echo@1.0.0"),
    legacyJob(2, "success", "ticker@1.0.0"),
  ];
  const oldIds = old.map((j) => j.job_id);
  await writeLayout2(kvPath, old, 3);
  const store = await Store.open({ path: kvPath });
  try {
    equal(await store.migrate(), 0, "nothing to move");
    equal((await store.kv.get(["v1", "meta", "layout"])).value, 4);
  } finally {
    await store.close();
  }
  await using server = await startServer({ kvPath, sweepIntervalMs: 0 });
  await using c = await connect(server.url);
  const fresh: string[] = [];
  for (let i = 0; i < 12; i++) {
    const acc = await c.submit({ agent: "echo", input: { i } });
    equal(acc.type, "job.accepted");
    await c.untilTerminal(acc.job_id!);
    fresh.push(acc.job_id!);
  }
  deepEqual(await listed(c, { agent: "echo" }), [...oldIds.slice(0, 2), ...fresh]);
  deepEqual(await listed(c, { agent: "echo", status: ["success"] }), [oldIds[0], ...fresh]);
  deepEqual(await listed(c, { agent: "echo@1.0.0", status: ["error"] }), [oldIds[1]]);
  deepEqual(await listed(c, { agent: "ticker" }), [oldIds[2]]);
  // Page by page across both kinds of entry: each job once, in order, with its listed fields.
  const expected = [...oldIds.slice(0, 2), ...fresh];
  const seen: Array<{ job_id: string; status: string; agent: string }> = [];
  let cursor: string | null = null;
  do {
    const req = c.send("session.list_jobs", { filter: { agent: "echo" }, limit: 5, cursor });
    const res = await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
    seen.push(...res.payload.jobs);
    cursor = res.payload.next_cursor;
  } while (cursor);
  deepEqual(seen.map((j) => j.job_id), expected);
  ok(seen.every((j) => j.agent.startsWith("echo@")));
  equal(seen.find((j) => j.job_id === oldIds[1])?.status, "error");
  await c.close();
  await server.close();
  // Newest first (the management API's order), page by page.
  const reopened = await Store.open({ path: kvPath });
  try {
    const ids: string[] = [];
    let after: JobPosition | undefined;
    do {
      const page = await reopened.listJobs("alice", {
        agent: "echo",
        limit: 4,
        newestFirst: true,
        after,
      });
      ids.push(...page.jobs.map((j) => j.job_id));
      after = page.next;
    } while (after);
    deepEqual(ids, [...expected].reverse());
  } finally {
    await reopened.close();
  }
  // The new agent entries carry nothing; the old ones keep their copy.
  const kv = await Deno.openKv(kvPath);
  try {
    for await (const e of kv.list({ prefix: ["v1", "pja", "alice", "echo"] })) {
      const id = e.key.at(-1) as string;
      if (oldIds.includes(id)) equal((e.value as JobRecord).job_id, id);
      else equal(e.value, null, `${id}'s agent entry`);
    }
  } finally {
    kv.close();
  }
});
