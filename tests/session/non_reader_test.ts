/**
 * A client that never reads must cost this process a bounded amount of
 * memory: events to it are paused (and not held in memory while paused),
 * and a socket whose queue passes the cap anyway is dropped at once, not
 * closed behind its queue. Its session stays resumable from KV.
 */
import { equal, ok } from "assert";
import { RawWs } from "../../testing/raw_ws.ts";
import { startChildServer, startServer } from "../../testing/server.ts";
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

/** Resident set of a process (`ps`: Deno reads another process's `/proc` only with --allow-all). */
async function rssMiB(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] }).output();
  return Number(new TextDecoder().decode(out.stdout).trim()) / 1024;
}

Deno.test("events to a client that never reads are not held in the server's memory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_nonreader_" });
  const child = await startChildServer(`${dir}/arcp.kv`);
  const raw = await RawWs.open(child.url);
  try {
    const w = await raw.hello(FEATURES);
    await raw.send({
      type: "job.submit",
      session_id: w.session_id,
      payload: { agent: "ticker", input: { count: 2_000_000, interval_ms: 0 } },
    });
    // Let the buffers fill and the pause begin, then measure while the ticker runs on.
    await new Promise((r) => setTimeout(r, 4_000));
    const before = await rssMiB(child.process.pid);
    await new Promise((r) => setTimeout(r, 10_000));
    const grown = await rssMiB(child.process.pid) - before;
    ok(grown < 60, `server RSS grew ${grown.toFixed(0)} MiB in 10 s while the client did not read`);
  } finally {
    raw.close();
    await child.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
