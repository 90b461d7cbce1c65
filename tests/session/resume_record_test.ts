// A commit of a session's log entries rewrites the session record only when
// more than its last_seq changed (or it is due a refresh), so the record in KV
// may name an older last_seq than its log holds. These tests leave a store in
// that state after SIGKILL and prove a resume is still exact: accepted from
// the last seq the client saw, nothing replayed twice, no seq handed out again.
import { deepEqual, equal, ok } from "assert";
import { type ChildServer, startChildServer } from "../../testing/server.ts";
import { type Env, resume, WsClient } from "../../testing/ws_client.ts";
import type { SessionRecord } from "../../src/store/records.ts";
import { keys } from "../../src/store/keys.ts";
import { listTexts } from "../../src/store/large_value.ts";

/** The seq-bearing envelopes of a list must be `from`, `from + 1`, ... without gaps or repeats. */
function assertGapFree(envs: Env[], from: number): void {
  const seqs = envs.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq!);
  deepEqual(seqs, seqs.map((_, i) => from + i), `seqs not gap-free from ${from}: ${seqs}`);
}

/** Runs `n` echo jobs one after another; returns every seq-bearing envelope. */
async function echoes(c: WsClient, n: number): Promise<Env[]> {
  const out: Env[] = [];
  for (let i = 0; i < n; i++) {
    const acc = await c.submit({ agent: "echo", input: { i } });
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    out.push(...await c.untilTerminal(acc.job_id!));
  }
  return out;
}

/** Sets a session record's `last_seq` in the KV file (the process that wrote it is gone). */
async function setRecordLastSeq(kvPath: string, sessionId: string, lastSeq: number): Promise<void> {
  const kv = await Deno.openKv(kvPath);
  try {
    const entry = await kv.get<SessionRecord>(keys.session(sessionId));
    ok(entry.value, "the session record is in KV");
    await kv.set(keys.session(sessionId), { ...entry.value, last_seq: lastSeq });
  } finally {
    kv.close();
  }
}

/** The seqs a session's log holds in the KV file. */
async function loggedSeqs(kvPath: string, sessionId: string): Promise<number[]> {
  const kv = await Deno.openKv(kvPath);
  try {
    const seqs: number[] = [];
    for await (const [seq] of listTexts(kv, keys.sessionLog(sessionId))) seqs.push(seq);
    return seqs;
  } finally {
    kv.close();
  }
}

/** Waits until a session's log in the KV file (written by another process) is empty. */
async function untilFreed(kvPath: string, sessionId: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await loggedSeqs(kvPath, sessionId)).length > 0) {
    if (Date.now() > deadline) throw new Error("the acknowledged log was not freed");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runs a first process on a fresh KV file, SIGKILLs it after `work`, then starts a second. */
async function acrossCrash<T>(
  work: (url: string, kvPath: string) => Promise<T>,
  between: (kvPath: string, t: T) => Promise<void>,
  after: (second: ChildServer, t: T) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_record_" });
  const kvPath = `${dir}/arcp.kv`;
  let second: ChildServer | undefined;
  try {
    const first = await startChildServer(kvPath);
    let t: T;
    try {
      t = await work(first.url, kvPath);
    } finally {
      await first.stop("SIGKILL");
    }
    await between(kvPath, t);
    second = await startChildServer(kvPath);
    await after(second, t);
  } finally {
    await second?.stop("SIGTERM");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test("a session record behind its log: after SIGKILL a resume from the last seq seen is exact and new seqs go on above it", async () => {
  await acrossCrash(
    async (url) => {
      const c = new WsClient(url);
      const w = await c.hello("alice-token");
      const out = await echoes(c, 10);
      assertGapFree(out, 1);
      await c.close();
      return { sessionId: c.sessionId, token: w.payload.resume_token as string, out };
    },
    // The record as a commit that left it alone leaves it: older than every entry.
    (kvPath, t) => setRecordLastSeq(kvPath, t.sessionId, 0),
    async (second, t) => {
      const last = t.out.at(-1)!.event_seq!;
      const middle = t.out[5].event_seq!;
      // From the middle: the rest of the log, once, in order.
      const c1 = await resume(
        second.url,
        { sessionId: t.sessionId, resumeToken: t.token },
        "alice-token",
        middle,
      );
      const replayed: Env[] = [];
      while (replayed.length < last - middle) {
        replayed.push(await c1.next((e) => e.event_seq !== undefined));
      }
      assertGapFree(replayed, middle + 1);
      deepEqual(replayed, t.out.slice(6), "the replay is what the first process sent");
      await c1.close();
      // From the last seq seen (which the record does not name): accepted, then new seqs above it.
      await using c2 = await resume(second.url, c1, "alice-token", last);
      const more = await echoes(c2, 2);
      assertGapFree(more, last + 1);
      equal(c2.seen.filter((e) => (e.event_seq ?? last + 1) <= last).length, 0);
    },
  );
});

Deno.test("a session that acknowledged everything: after SIGKILL the freed log still leaves last_seq exact (the record commits with the last delete)", async () => {
  await acrossCrash(
    async (url, kvPath) => {
      const c = new WsClient(url);
      const w = await c.hello("alice-token");
      const out = await echoes(c, 6);
      const last = out.at(-1)!.event_seq!;
      c.send("session.ack", { last_processed_seq: last });
      await untilFreed(kvPath, c.sessionId);
      // Left open: a detach would write the record again. The kill closes it.
      return { c, sessionId: c.sessionId, token: w.payload.resume_token as string, last };
    },
    async (kvPath, t) => {
      await t.c.closed();
      // Every entry was freed before the kill: the record alone carries last_seq.
      deepEqual(await loggedSeqs(kvPath, t.sessionId), []);
    },
    async (second, t) => {
      await using c = await resume(
        second.url,
        { sessionId: t.sessionId, resumeToken: t.token },
        "alice-token",
        t.last,
      );
      const more = await echoes(c, 2);
      assertGapFree(more, t.last + 1);
    },
  );
});
