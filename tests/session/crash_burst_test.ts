/**
 * A runtime killed in the middle of a burst of events, while batches are on
 * their way from the agent, in a commit and on the socket: every envelope
 * the client received was committed first, so after a restart on the same
 * KV a resume replays the log from seq 1 gap-free and once, and it begins
 * with exactly what the client had (same ids, same seqs).
 */
import { deepEqual, equal, ok } from "assert";
import { tempKv } from "../../testing/temp_dir.ts";
import { type ChildServer, startChildServer } from "../../testing/server.ts";
import { type Env, resume, WsClient } from "../../testing/ws_client.ts";

Deno.test("SIGKILL mid-burst: every envelope a client got is in the log; a resume replays it gap-free and once", async () => {
  await using tmp = await tempKv("arcp_crash_burst_");
  const { kvPath } = tmp;
  let child: ChildServer | undefined;
  try {
    child = await startChildServer(kvPath);
    const live = new WsClient(child.url);
    const welcome = await live.hello("alice-token");
    equal(welcome.type, "session.welcome", JSON.stringify(welcome.payload));
    const acc = await live.submit({ agent: "ticker", input: { count: 40_000, interval_ms: 0 } });
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    const jobId = acc.job_id!;
    await live.next(
      (e) => e.job_id === jobId && e.payload?.body?.current === 3000,
      60_000,
      "tick 3000",
    );
    equal((await child.stop("SIGKILL")).signal, "SIGKILL");
    child = undefined;
    await live.closed();
    const got = live.seen.filter((e) => e.event_seq !== undefined);
    ok(got.length >= 3000, `${got.length} envelopes before the crash`);
    got.forEach((e, i) => equal(e.event_seq, got[0].event_seq! + i, "live seqs are gap-free"));

    child = await startChildServer(kvPath);
    const again = await resume(child.url, {
      sessionId: live.sessionId,
      resumeToken: welcome.payload.resume_token,
    });
    try {
      const replay: Env[] = [];
      while (replay.length < got.at(-1)!.event_seq!) {
        replay.push(await again.next((e) => e.event_seq !== undefined, 30_000, "replay"));
      }
      replay.forEach((e, i) => equal(e.event_seq, i + 1, "replayed seqs are gap-free from 1"));
      for (const e of got) {
        const r = replay[e.event_seq! - 1];
        deepEqual([r.id, r.type, r.payload], [e.id, e.type, e.payload], `seq ${e.event_seq}`);
      }
    } finally {
      await again.close();
    }
  } finally {
    await child?.stop("SIGKILL");
  }
});
