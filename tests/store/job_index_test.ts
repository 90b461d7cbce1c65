/**
 * The list_jobs indexes against a real KV file: every filter, paged at
 * several sizes, lists exactly what a full scan of the records would, in
 * (creation time, id) order, after jobs went through their states.
 */
import { deepEqual, equal, ok } from "assert";
import { Store } from "../../src/store/store.ts";
import type { JobRecord } from "../../src/store/records.ts";
import { type JobQuery, listedJob } from "../../src/store/job_index.ts";
import type { JobStatus } from "../../src/protocol/messages.ts";

const STATUSES: JobStatus[] = ["pending", "running", "success", "error", "cancelled", "timed_out"];
const AGENTS = ["echo@1.0.0", "echo@2.0.0", "ticker@1.0.0"];
const T0 = Date.UTC(2026, 0, 1);

function jobRecord(i: number, principal: string): JobRecord {
  // Several jobs share a creation time, so ties are broken by id.
  const created = T0 + Math.floor(i / 3) * 1000;
  return {
    job_id: `job_${String(i).padStart(4, "0")}_${(i * 7919 % 1000).toString(36)}`,
    principal,
    session_id: "sess_x",
    agent: AGENTS[i % AGENTS.length],
    status: "pending",
    lease: {},
    trace_id: "0".repeat(32),
    created_at: new Date(created).toISOString(),
    created_ms: created,
    accepted_at: new Date(created).toISOString(),
    last_event_seq: 0,
    log_length: 0,
  };
}

/** What the indexes must answer: a full scan of the records, sorted. */
function reference(all: JobRecord[], principal: string, q: Omit<JobQuery, "limit">): string[] {
  return all
    .filter((j) => j.principal === principal)
    .filter((j) => !q.statuses || q.statuses.includes(j.status))
    .filter((j) => !q.agent || j.agent === q.agent || j.agent.split("@")[0] === q.agent)
    .filter((j) => q.createdAfterMs === undefined || j.created_ms > q.createdAfterMs)
    .filter((j) => q.createdBeforeMs === undefined || j.created_ms < q.createdBeforeMs)
    .sort((a, b) =>
      a.created_ms - b.created_ms || (a.job_id < b.job_id ? -1 : a.job_id > b.job_id ? 1 : 0)
    )
    .map((j) => j.job_id);
}

/** Every page of a listing, concatenated. */
async function pageAll(
  store: Store,
  principal: string,
  q: Omit<JobQuery, "limit">,
  limit: number,
): Promise<string[]> {
  const ids: string[] = [];
  let after: JobQuery["after"];
  for (let page = 0; page < 1000; page++) {
    const res = await store.listJobs(principal, { ...q, limit, after });
    ok(res.jobs.length <= limit);
    ids.push(...res.jobs.map((j) => j.job_id));
    if (!res.next) return ids;
    equal(res.jobs.length, limit, "a page with a next cursor was short");
    after = res.next;
  }
  throw new Error("paging did not end");
}

async function count(kv: Deno.Kv, prefix: Deno.KvKey): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix })) n++;
  return n;
}

Deno.test("every filter, paged at any size, lists what a full scan would, after jobs changed state", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_index_" });
  const store = await Store.open({ path: `${dir}/arcp.kv` });
  try {
    const all: JobRecord[] = [];
    for (let i = 0; i < 240; i++) {
      const job = jobRecord(i, i % 5 === 4 ? "bob" : "alice");
      all.push(job);
      // Each job is written as the runtime writes it: pending, then each later state.
      await store.write(store.jobWrites(job));
      const final = STATUSES[(i * 5 + Math.floor(i / 6)) % STATUSES.length];
      if (final === "pending") continue;
      job.status = "running";
      job.last_event_seq = 1;
      await store.write(store.jobWrites({ ...job }));
      if (final === "running") continue;
      job.status = final;
      job.ended_at = new Date(job.created_ms + 500).toISOString();
      job.last_event_seq = 2;
      await store.write(store.jobWrites({ ...job }));
    }
    const live = all.filter((j) => j.principal === "alice" && !j.ended_at).length;
    equal(await count(store.kv, ["v1", "plive", "alice"]), live, "stale live entries");

    const mid = T0 + 30_000;
    const queries: Array<Omit<JobQuery, "limit">> = [
      {},
      { statuses: ["success"] },
      { statuses: ["running"] },
      { statuses: ["pending", "running"] },
      { statuses: ["error", "cancelled", "timed_out"] },
      { statuses: ["running", "success"] },
      { agent: "echo" },
      { agent: "echo@2.0.0" },
      { agent: "ticker", statuses: ["pending", "success"] },
      { agent: "nope" },
      { createdAfterMs: mid },
      { createdBeforeMs: mid, statuses: ["running", "error"] },
      { createdAfterMs: T0 + 10_000, createdBeforeMs: mid, agent: "echo@1.0.0" },
    ];
    for (const principal of ["alice", "bob", "carol"]) {
      for (const q of queries) {
        const want = reference(all, principal, q);
        for (const limit of [1, 7, 50, 1000]) {
          deepEqual(
            await pageAll(store, principal, q, limit),
            want,
            `${principal} ${JSON.stringify(q)} limit ${limit}`,
          );
        }
      }
    }
    // Entries carry what list_jobs reports: the current record while live, its listed fields once ended.
    const running = all.find((j) => j.status === "running" && j.principal === "alice")!;
    const page = await store.listJobs("alice", { statuses: ["running"], limit: 1000 });
    deepEqual(page.jobs.find((j) => j.job_id === running.job_id), running);
    const done = all.find((j) => j.status === "success" && j.principal === "alice")!;
    const finished = await store.listJobs("alice", { agent: done.agent, limit: 1000 });
    deepEqual(finished.jobs.find((j) => j.job_id === done.job_id), listedJob(done));
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
