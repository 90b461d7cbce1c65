/**
 * A client that never reads: a socket whose queue passes the cap is
 * dropped at once, not closed behind its queue, and its session stays
 * resumable from KV. What such clients cost in memory is measured, not
 * asserted: figure 15 of `deno task bench` (`bench/slow_reader_figures.ts`).
 */
import { equal, ok } from "assert";
import { RawWs } from "../../testing/raw_ws.ts";
import { startServer } from "../../testing/server.ts";
import { ALL_FEATURES, WsClient } from "../../testing/ws_client.ts";

const FEATURES = ALL_FEATURES.filter((f) => f !== "heartbeat");
const MIB = 1024 * 1024;

/** Reads whatever is left until the connection ends; false when it stays open for `ms`. */
async function endsWithin(raw: RawWs, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const f = await raw.readFrame(Math.max(1, deadline - Date.now()));
    if (!f) return Date.now() < deadline;
  }
  return false;
}

Deno.test("a client that asks without reading is dropped once its queue passes the cap, and resumes", async () => {
  await using server = await startServer({ maxSocketBytes: MIB, stallTimeoutMs: 120_000 });
  const raw = await RawWs.open(server.url);
  try {
    const w = await raw.hello(FEATURES);
    // Every ping is answered, read or not: ~1 KiB pongs, more than both
    // hops' kernel buffers and the cap hold.
    const nonce = "n".repeat(1000);
    let sent = 0;
    try {
      for (; sent < 60_000; sent++) {
        await raw.send({
          type: "session.ping",
          session_id: w.session_id,
          payload: { nonce, sent_at: new Date().toISOString() },
        });
      }
    } catch {
      // the runtime dropped the connection while we were still writing
    }
    ok(await endsWithin(raw, 20_000), `the connection stayed open after ${sent} unread pings`);

    await using c = new WsClient(server.url);
    const back = await c.hello("alice-token", FEATURES, {
      session_id: w.session_id,
      resume_token: w.payload.resume_token,
      last_event_seq: 0,
    });
    equal(back.type, "session.welcome", JSON.stringify(back.payload));
    const job = await c.submit({ agent: "echo", input: "after" });
    equal(job.type, "job.accepted");
    await c.untilTerminal(job.job_id!);
  } finally {
    raw.close();
  }
});
