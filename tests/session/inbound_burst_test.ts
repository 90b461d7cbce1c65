/**
 * A burst of inbound frames written at once is processed in the order it
 * was sent, even when the runtime holds part of it back to let timers and
 * other sockets run; and another session is answered meanwhile.
 */
import { deepEqual, equal } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";

Deno.test("thousands of frames sent at once are answered in order; another session's ping is answered meanwhile", async () => {
  await using server = await startServer();
  await using a = await connect(server.url);
  await using b = await connect(server.url, "bob-token");
  const n = 3000;
  const sentAt = new Date().toISOString();
  for (let i = 0; i < n; i++) a.send("session.ping", { nonce: `a-${i}`, sent_at: sentAt });
  // A submit behind the burst is routed after every frame before it.
  const trace = "0af7651916cd43dd8448eb211c80319c";
  a.send("job.submit", { agent: "echo", input: "after" }, { trace_id: trace });
  b.send("session.ping", { nonce: "b", sent_at: sentAt });
  equal((await b.next((e) => e.type === "session.pong")).payload.ping_nonce, "b");
  const accepted = await a.next(
    (e) => e.trace_id === trace && (e.type === "job.accepted" || e.type === "job.error"),
    60_000,
    "the submit behind the burst",
  );
  const pongs = a.seen.filter((e) => e.type === "session.pong").map((e) => e.payload.ping_nonce);
  equal(accepted.type, "job.accepted", JSON.stringify(accepted.payload));
  deepEqual(pongs, Array.from({ length: n }, (_, i) => `a-${i}`), "pongs out of order");
  equal((await a.untilTerminal(accepted.job_id!)).at(-1)!.type, "job.result");
});

Deno.test("a burst of queued requests with bad frames among them is answered in order, every one", async () => {
  await using server = await startServer();
  await using a = await connect(server.url);
  const n = 1500;
  const sentAt = new Date().toISOString();
  const ids: string[] = [];
  // Pings first, so the stretch is spent when the queued requests arrive and
  // the first of them is held already decoded.
  for (let i = 0; i < n; i++) a.send("session.ping", { nonce: `p-${i}`, sent_at: sentAt });
  for (let i = 0; i < n; i++) {
    if (i % 100 === 0) a.sendRaw("{not json");
    ids.push(a.send("session.list_jobs", { limit: 1 }).id as string);
  }
  const last = ids.at(-1)!;
  await a.next(
    (e) => e.type === "session.jobs" && e.payload.request_id === last,
    60_000,
    "the last list_jobs answer",
  );
  const answered = a.seen.filter((e) => e.type === "session.jobs").map((e) => e.payload.request_id);
  deepEqual(answered, ids, "list_jobs answers out of order or missing");
  equal(a.seen.filter((e) => e.type === "session.error").length, n / 100);
  const pongs = a.seen.filter((e) => e.type === "session.pong").map((e) => e.payload.ping_nonce);
  deepEqual(pongs, Array.from({ length: n }, (_, i) => `p-${i}`), "pongs out of order");
});
