import { deepEqual, equal } from "assert";
import { GroupCommitter } from "./group_commit.ts";
import { RuntimeLog } from "./runtime_log.ts";

async function indexes(log: RuntimeLog): Promise<number[]> {
  return (await log.read(-1, 1000)).events.map((e) => e.index);
}

Deno.test("trims keep the newest maxEntries as the log grows, trim after trim", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_rtlog_" });
  const kv = await Deno.openKv(`${dir}/test.kv`);
  try {
    const log = new RuntimeLog(kv, new GroupCommitter(kv), {
      retentionMs: Infinity,
      maxEntries: 5,
    });
    for (let i = 0; i < 8; i++) await log.append("job.accepted", { job_id: `job_${i}` });
    equal(await log.trim(), 3);
    deepEqual(await indexes(log), [3, 4, 5, 6, 7]);
    // Nothing is due: the head it kept is still kept.
    equal(await log.trim(), 0);
    // The head it knew is due once the log has grown past it: the trim reads again.
    for (let i = 8; i < 10; i++) await log.append("job.ended", { job_id: `job_${i}` });
    equal(await log.trim(), 2);
    deepEqual(await indexes(log), [5, 6, 7, 8, 9]);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trims delete entries past the retention period once they are past it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_rtlog_" });
  const kv = await Deno.openKv(`${dir}/test.kv`);
  try {
    const log = new RuntimeLog(kv, new GroupCommitter(kv), {
      retentionMs: 200,
      maxEntries: 1000,
    });
    await log.append("runtime.started", {});
    equal(await log.trim(), 0);
    // Time passes until the entry is past retention (a wait on the clock, not on the code under test).
    const since = Date.now();
    while (Date.now() - since <= 250) await new Promise((r) => setTimeout(r, 50));
    await log.append("drain.started", {});
    // The first is gone; the second too, should the machine be slow enough for it to age as well.
    equal(await log.trim() >= 1, true);
    equal((await indexes(log)).includes(0), false);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("entries stored as objects, then as texts sharing a value, read and trim as entries", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_rtlog_" });
  const kv = await Deno.openKv(`${dir}/test.kv`);
  try {
    // Two entries as a runtime wrote them before entries were texts: an object a key.
    const time = new Date().toISOString();
    await kv.set(["v1", "rtlog", 0], { index: 0, time, kind: "runtime.started", data: {} });
    await kv.set(["v1", "rtlog", 1], {
      index: 1,
      time,
      kind: "session.opened",
      data: { session_id: "sess_1" },
    });
    const committer = new GroupCommitter(kv);
    const log = new RuntimeLog(kv, committer, { retentionMs: Infinity, maxEntries: 1000 });
    // Appended in one step, they commit together: one value, at the key of the last.
    await Promise.all([
      log.append("job.accepted", { job_id: "job_a" }),
      log.append("job.ended", { job_id: "job_a" }),
      log.append("job.accepted", { job_id: "job_b" }),
    ]);
    equal((await kv.get(["v1", "rtlog", 2])).value, null);
    equal((await kv.get(["v1", "rtlog", 3])).value, null);
    equal((await kv.get<string[]>(["v1", "rtlog", 4])).value?.length, 3);

    const all = await log.read(-1, 100);
    deepEqual(all.events.map((e) => [e.index, e.kind]), [
      [0, "runtime.started"],
      [1, "session.opened"],
      [2, "job.accepted"],
      [3, "job.ended"],
      [4, "job.accepted"],
    ]);
    deepEqual(all.events[1].data, { session_id: "sess_1" });
    deepEqual(all.events[3].data, { job_id: "job_a" });
    equal(all.hasMore, false);
    // A cursor inside a shared value, and a limit that ends inside one.
    const mid = await log.read(2, 1);
    deepEqual(mid.events.map((e) => e.index), [3]);
    equal(mid.hasMore, true);
    const across = await log.read(0, 2);
    deepEqual(across.events.map((e) => e.index), [1, 2]);
    equal(across.hasMore, true);

    // A trim whose cut falls inside a shared value keeps that value's newer entries.
    const bounded = new RuntimeLog(kv, committer, { retentionMs: Infinity, maxEntries: 3 });
    await bounded.append("drain.started", {});
    equal(await bounded.trim(), 3);
    deepEqual((await bounded.read(-1, 100)).events.map((e) => e.index), [3, 4, 5]);
    equal((await kv.get<string[]>(["v1", "rtlog", 4])).value?.length, 2);
    equal((await kv.get(["v1", "rtlog", 1])).value, null);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
