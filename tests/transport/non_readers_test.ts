/**
 * Ten clients that submit a ticker and never read, through the gate as
 * `arcp serve` runs it: once what is queued to a socket passes its cap the
 * socket is dropped at once, not closed behind its queue; every session
 * stays resumable from KV with all its events; the runtime keeps answering
 * `/healthz` and another principal's jobs throughout. Memory is measured
 * by `deno task bench:figures --only 15`, not here.
 */
import { deepEqual, equal, ok } from "assert";
import { RawWs } from "../../testing/raw_ws.ts";
import { startServer } from "../../testing/server.ts";
import { connect, type Env, WsClient } from "../../testing/ws_client.ts";

const CLIENTS = 10;
const TICKS = 2000;
const FEATURES = ["progress"];
/** Pongs of ~1.1 KiB: more than the cap and both hops' kernel buffers hold, a hundred times over. */
const NONCE = "n".repeat(1000);
const MAX_PINGS = 60_000;

/** One client that stops reading after its submit. */
interface Stuck {
  raw: RawWs;
  welcome: Env;
  /** Pings written before the runtime dropped the connection. */
  pings: number;
}

/** Hello and a ticker submit, then pings, written and never read, until the runtime drops the socket. */
async function stuckClient(url: string): Promise<Stuck> {
  const raw = await RawWs.open(url);
  const welcome = await raw.hello(FEATURES);
  await raw.send({
    type: "job.submit",
    session_id: welcome.session_id,
    payload: { agent: "ticker", input: { count: TICKS, interval_ms: 0 } },
  });
  let pings = 0;
  try {
    for (; pings < MAX_PINGS; pings++) {
      await raw.send({
        type: "session.ping",
        session_id: welcome.session_id,
        payload: { nonce: NONCE, sent_at: new Date().toISOString() },
      });
    }
  } catch {
    // the runtime dropped the connection while we were still writing
  }
  return { raw, welcome, pings };
}

/** Reads what is left until the connection ends, or `ms` passes with it open; how it ended. */
async function ending(
  raw: RawWs,
  ms: number,
): Promise<{ eof: boolean; closeFrames: number; seqs: number[] }> {
  const seqs: number[] = [];
  let closeFrames = 0;
  const deadline = Date.now() + ms;
  while (true) {
    const f = await raw.readFrame(Math.max(1, deadline - Date.now()));
    if (!f) return { eof: Date.now() < deadline, closeFrames, seqs };
    if (f.opcode === 8) closeFrames++;
    if (f.opcode !== 1) continue;
    const env = JSON.parse(new TextDecoder().decode(f.payload)) as Env;
    if (env.event_seq !== undefined) seqs.push(env.event_seq);
  }
}

/** Bob runs an echo job to its result and /healthz answers ok. */
async function othersServed(c: WsClient, http: string, tag: string): Promise<void> {
  const accepted = await c.submit({ agent: "echo", input: tag });
  equal(accepted.type, "job.accepted", JSON.stringify(accepted.payload));
  const result = (await c.untilTerminal(accepted.job_id!, 30_000)).at(-1)!;
  equal(result.type, "job.result", JSON.stringify(result.payload));
  const health = await fetch(`${http}/healthz`);
  equal(health.status, 200);
  equal((await health.json()).ok, true);
}

Deno.test("ten clients that never read are dropped past the queue cap, resume with every event, and nobody else notices", async () => {
  await using server = await startServer({
    maxSocketBytes: 256 * 1024,
    // The stall watchdog would close these sockets too; give it no chance, so only the cap can.
    stallTimeoutMs: 600_000,
    // Eleven fresh jobs start at once; on a loaded machine that queue may outlast the
    // default `sandboxQueueMs` and refuse bob with `sandbox_busy`. The test is about sockets.
    sandboxQueueMs: 60_000,
  });
  await using bob = await connect(server.url, "bob-token", FEATURES);

  const flooding = Array.from({ length: CLIENTS }, () => stuckClient(server.url));
  await othersServed(bob, server.http, "while they flood");
  const stuck = await Promise.all(flooding);
  await othersServed(bob, server.http, "after they flooded");

  for (const [i, s] of stuck.entries()) {
    try {
      const end = await ending(s.raw, 30_000);
      ok(end.eof, `client ${i}: the connection stayed open after ${s.pings} unread pings`);
      equal(end.closeFrames, 0, `client ${i}: closed politely, not aborted`);
      deepEqual(end.seqs, end.seqs.map((_, k) => k + 1), `client ${i}: seqs not gap-free`);
    } finally {
      s.raw.close();
    }
  }

  for (const [i, s] of stuck.entries()) {
    await using c = new WsClient(server.url);
    const back = await c.hello("alice-token", FEATURES, {
      session_id: s.welcome.session_id,
      resume_token: s.welcome.payload.resume_token,
      last_event_seq: 0,
    });
    equal(back.type, "session.welcome", `client ${i}: ${JSON.stringify(back.payload)}`);
    // job.accepted carries no seq and is not logged: the replay is the job's events and result.
    const envs: Env[] = [];
    while (envs.at(-1)?.type !== "job.result") {
      envs.push(await c.next((e) => e.event_seq !== undefined, 30_000, `event ${envs.length + 1}`));
    }
    const seqs = envs.map((e) => e.event_seq!);
    deepEqual(seqs, seqs.map((_, k) => k + 1), `client ${i}: replay not gap-free from 1`);
    const ticks = envs.filter((e) => e.payload?.kind === "progress").map((e) => e.payload.body);
    deepEqual(ticks.map((b) => b.current), Array.from({ length: TICKS }, (_, k) => k + 1));
    equal(envs.at(-1)!.type, "job.result");
    deepEqual(envs.at(-1)!.payload.result, { ticks: TICKS });
  }
});
