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
