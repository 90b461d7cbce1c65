/**
 * Figure 14: what noticing storage damage costs. On a store as a runtime
 * leaves it after 10,000 finished jobs (records, indexes, histories and
 * session logs, written through the runtime's own `Store`): the start check
 * in-process and as part of `arcp serve`'s start, how fast it finds 64 KiB
 * overwritten in the middle, and how long `arcp doctor`'s full examination
 * takes beside Deno KV listing the same entries.
 *
 * @module
 */
import { examineStore } from "../src/store/doctor.ts";
import { checkStoreFile } from "../src/store/kv_file.ts";
import type { JobRecord } from "../src/store/records.ts";
import { Store } from "../src/store/store.ts";
import { overwriteLog } from "../testing/kv_damage.ts";
import { CLI_RUN, ROOT, TOKENS } from "../testing/server.ts";
import { heading, report, scaled } from "./_report.ts";
import { fmt, type Stats, stats } from "./_util.ts";

/** Sessions the jobs are spread over, and events each job logged. */
const SESSIONS = 100;
const EVENTS_PER_JOB = 10;
const LOG_TTL_MS = 24 * 3600 * 1000;

const ms = (n: number) => fmt(n, n < 10 ? 2 : 1);

/**
 * Writes `jobs` finished jobs the way the runtime does: each job's record
 * with its indexes, its history, and its events in its session's log.
 *
 * @returns the session and seq of the middle event of the first session's log
 */
async function writeStore(path: string, jobs: number): Promise<{ sessionId: string; seq: number }> {
  const store = await Store.open({ path });
  const seqs = new Array<number>(SESSIONS).fill(0);
  const sessionId = (s: number) => `sess_01JBENCH${String(s).padStart(17, "0")}`;
  let pending: Promise<void>[] = [];
  for (let j = 0; j < jobs; j++) {
    const s = j % SESSIONS;
    const sid = sessionId(s);
    const jobId = `job_01JBENCH${String(j).padStart(18, "0")}`;
    const now = new Date().toISOString();
    const job: JobRecord = {
      job_id: jobId,
      principal: `p${s % 8}`,
      session_id: sid,
      agent: "ticker@1.0.0",
      status: "success",
      lease: { "fs.read": ["/srv/data/**"], "net.fetch": ["https://api.example.com/**"] },
      trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
      created_at: now,
      created_ms: Date.now(),
      accepted_at: now,
      ended_at: now,
      last_event_seq: 0,
      log_length: 0,
    };
    const writes = [];
    for (let e = 1; e <= EVENTS_PER_JOB; e++) {
      const seq = ++seqs[s];
      const last = e === EVENTS_PER_JOB;
      const text = JSON.stringify({
        arcp: "1.1",
        id: crypto.randomUUID(),
        type: last ? "job.result" : "job.event",
        session_id: sid,
        job_id: jobId,
        trace_id: job.trace_id,
        event_seq: seq,
        payload: last
          ? { final_status: "success", result: { ticks: e } }
          : { kind: "progress", ts: now, body: { current: e, total: EVENTS_PER_JOB } },
      });
      writes.push(
        ...store.sessionLogWrites(sid, seq, text, LOG_TTL_MS),
        ...store.jobLogWrites(jobId, job.log_length++, text),
      );
      job.last_event_seq = seq;
    }
    writes.push(...store.jobWrites(job));
    writes.push(store.sessionWrite({
      session_id: sid,
      principal: job.principal,
      created_at: now,
      last_seq: seqs[s],
      acked_seq: 0,
      floor_seq: 0,
      resume_token_hash: "0".repeat(64),
      features: ["ack", "subscribe", "list_jobs", "progress"],
    }, LOG_TTL_MS));
    pending.push(store.write(writes));
    if (pending.length >= 64) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  await store.close();
  return { sessionId: sessionId(0), seq: Math.ceil(seqs[0] / 2) };
}

/** `n` timings of `fn` (ms). */
async function sample(n: number, fn: () => Promise<unknown>): Promise<Stats> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn().catch(() => {});
    out.push(performance.now() - t0);
  }
  return stats(out);
}

/**
 * `arcp serve` on a store, from spawn to its `listening` line (then stopped)
 * or to its exit.
 *
 * @returns the time and how it ended
 */
async function serveStart(
  kvPath: string,
  extra: string[] = [],
): Promise<{ ms: number; code?: number }> {
  const tokens = Object.entries(TOKENS).flatMap(([t, p]) => ["--token", `${t}=${p}`]);
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...CLI_RUN,
      "serve",
      "--port",
      "0",
      "--kv",
      kvPath,
      "--agents",
      `${ROOT}/agents`,
      "--warm-pool",
      "0",
      ...tokens,
      ...extra,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let out = "";
  let took: number | undefined;
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    out += chunk;
    if (/listening on/.test(out)) {
      took = performance.now() - t0;
      child.kill("SIGTERM");
    }
  }
  const { code } = await child.status;
  return took === undefined ? { ms: performance.now() - t0, code } : { ms: took };
}

/** The median of `n` starts. */
async function startMedian(n: number, kvPath: string, extra: string[] = []): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push((await serveStart(kvPath, extra)).ms);
  return stats(times).p50;
}

/** Figure 14. */
export async function figure14(): Promise<void> {
  const jobs = scaled(10_000, 200);
  const dir = await Deno.makeTempDir({ prefix: "arcp_bench_damage_" });
  try {
    const healthy = `${dir}/healthy.kv`;
    const damaged = `${dir}/damaged.kv`;
    heading(`14. storage damage: start check and arcp doctor, store of ${jobs} finished jobs`);
    const middle = await writeStore(healthy, jobs);
    await Deno.copyFile(healthy, damaged);
    const mb = (await Deno.stat(healthy)).size / 1e6;
    // From the page holding the log's middle, whatever follows it.
    await overwriteLog(damaged, ["v1", "slog", middle.sessionId], middle.seq, { alone: false });
    const store = `${fmt(mb, 1)} MB, ${jobs} jobs × ${EVENTS_PER_JOB} events`;

    const figure = "14. storage damage";
    const check = await sample(5, () => checkStoreFile(healthy));
    report({
      figure,
      metric: "start check, healthy store, median of 5",
      value: ms(check.p50),
      unit: "ms",
      notes: `${store}; ${fmt(mb / (check.p50 / 1000), 0)} MB/s (SQLite quick_check)`,
    });
    const detect = await sample(5, () => checkStoreFile(damaged));
    report({
      figure,
      metric: "start check, 64 KiB overwritten mid-log, time to the error",
      value: ms(detect.p50),
      unit: "ms",
      notes: `median of 5; ${fmt(detect.p50 / check.p50, 2)}× the healthy check (it stops at the ` +
        "first bad page)",
    });

    const starts = scaled(3, 1);
    const withCheck = await startMedian(starts, healthy);
    const without = await startMedian(starts, healthy, ["--skip-store-check"]);
    report({
      figure,
      metric: "arcp serve spawn → listening, healthy store, with the check",
      value: ms(withCheck),
      unit: "ms",
      notes: `median of ${starts}; --warm-pool 0, reference agents`,
    });
    report({
      figure,
      metric: "… the same with --skip-store-check",
      value: ms(without),
      unit: "ms",
      notes: `the check adds ${ms(withCheck - without)} ms, ${
        fmt(((withCheck - without) / without) * 100, 0)
      } % of the start`,
    });
    const refused = await serveStart(damaged);
    report({
      figure,
      metric: "arcp serve spawn → exit 1, damaged store",
      value: ms(refused.ms),
      unit: "ms",
      notes: `exit code ${refused.code}; ${fmt(refused.ms / withCheck, 2)}× a healthy start`,
    });

    let t0 = performance.now();
    const clean = examineStore(healthy);
    const doctorMs = performance.now() - t0;
    t0 = performance.now();
    const kv = await Deno.openKv(healthy);
    let listed = 0;
    for await (const _ of kv.list({ prefix: [] }, { batchSize: 1000 })) listed++;
    kv.close();
    const listMs = performance.now() - t0;
    report({
      figure,
      metric: "arcp doctor, healthy store (integrity check + every entry)",
      value: fmt(doctorMs / 1000, 2),
      unit: "s",
      notes: `${clean.entries} entries, ${clean.problems.length + clean.sqlite.length} problems; ` +
        `Deno KV lists them in ${fmt(listMs / 1000, 2)} s: ${fmt(doctorMs / listMs, 1)}×`,
    });
    t0 = performance.now();
    const broken = examineStore(damaged);
    report({
      figure,
      metric: "arcp doctor, 64 KiB overwritten mid-log",
      value: fmt((performance.now() - t0) / 1000, 2),
      unit: "s",
      notes: `${broken.entries} entries readable, ${
        broken.problems.length + broken.sqlite.length
      } problems listed`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
