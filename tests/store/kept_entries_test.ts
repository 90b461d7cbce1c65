/**
 * What a job's commit writes is kept until the runtime deletes it: its
 * record, index entries, history and runtime-log entries carry KV's expiry
 * only as a place in KV's expiry index, about 1,000 years away (see
 * `KEEP_MS` in `large_value.ts`), so KV never drops them; and a restarted
 * runtime reads them back as the first one served them.
 */
import { deepEqual, ok } from "assert";
import { DatabaseSync } from "sqlite";
import { tempKv } from "../../testing/temp_dir.ts";
import { startServer } from "../../testing/server.ts";
import { connect, resume, type WsClient } from "../../testing/ws_client.ts";

/** 900 years in ms: less than what the runtime asks for, far more than any retention. */
const FAR_MS = 900 * 365 * 24 * 3600 * 1000;

/** The rows of the `kv` table whose key holds `part`, with their expiry, read from the file. */
function expiries(kvPath: string, part: string): number[] {
  const db = new DatabaseSync(kvPath, { readOnly: true });
  try {
    const needle = new TextEncoder().encode(part);
    const rows: Record<string, unknown>[] = db.prepare("SELECT k, expiration_ms FROM kv").all();
    return rows.filter((r) => includes(r.k as Uint8Array, needle)).map((r) =>
      Number(r.expiration_ms)
    );
  } finally {
    db.close();
  }
}

function includes(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

async function listed(c: WsClient): Promise<unknown[]> {
  const req = c.send("session.list_jobs", {});
  const res = await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
  return res.payload.jobs;
}

Deno.test("a finished job's entries never expire in KV and read back the same after a restart", async () => {
  await using tmp = await tempKv("arcp_kept_");
  const kvPath = tmp.kvPath;
  const server1 = await startServer({ kvPath, sweepIntervalMs: 0 });
  let jobs: unknown[];
  let session: { sessionId: string; resumeToken: string };
  let jobId: string;
  let sent: unknown[];
  try {
    const c = await connect(server1.url);
    const accepted = await c.submit({ agent: "echo", input: { n: 1 } });
    jobId = accepted.job_id!;
    await c.untilTerminal(jobId);
    jobs = await listed(c);
    session = { sessionId: c.sessionId, resumeToken: c.resumeToken };
    // What the session logged: every envelope of the job with a seq (not `job.accepted`).
    sent = c.seen.filter((e) => e.job_id === jobId && e.event_seq !== undefined);
    await c.close();
  } finally {
    await server1.close();
  }

  const since = Date.now();
  // The record, its status, agent and end-time entries and its history.
  const own = expiries(kvPath, jobId);
  ok(own.length >= 5, `the job's keys: ${own.length}`);
  for (const at of own) ok(at > since + FAR_MS, `a job entry expires at ${at}`);
  const runtimeLog = expiries(kvPath, "rtlog");
  ok(runtimeLog.length > 0, "runtime-log entries");
  for (const at of runtimeLog) ok(at > since + FAR_MS, `a runtime-log entry expires at ${at}`);

  await using server2 = await startServer({ kvPath, sweepIntervalMs: 0 });
  await using again = await resume(server2.url, session);
  deepEqual(await listed(again), jobs);
  // The session's log replays the job's envelopes as they were first sent.
  ok(sent.length >= 2, "an event and the result");
  const replayed: unknown[] = [];
  while (replayed.length < sent.length) {
    replayed.push(await again.next((e) => e.job_id === jobId, 5000, "replayed envelope"));
  }
  deepEqual(replayed, sent);
});
