/**
 * Output quotas (issue 9, class 9) against a real server: a job that floods
 * its log ends with INTERNAL_ERROR naming the quota, while another
 * principal's honest job completes; the per-principal quota counts a
 * principal's live jobs together and frees what ended jobs held.
 */
import { deepEqual, equal, match, ok } from "assert";
import { ROOT, startServer, type TestServer } from "../../testing/server.ts";
import { connect, type Env, resume, WsClient } from "../../testing/ws_client.ts";

const AGENTS = `${ROOT}/tests/fixtures/quotas`;

/** Floods from alice beside bob's ticker; returns alice's envelopes per job. */
async function floodBesideTicker(
  server: TestServer,
  floods: Array<{ count: number; size: number; text?: string }>,
): Promise<Env[][]> {
  const bob = await connect(server.url, "bob-token");
  const alice = await connect(server.url, "alice-token");
  try {
    const ticker = await bob.submit({ agent: "ticker", input: { count: 20, interval_ms: 20 } });
    equal(ticker.type, "job.accepted", JSON.stringify(ticker.payload));
    const ids: string[] = [];
    for (const input of floods) {
      const acc = await alice.submit({ agent: "flooder", input });
      equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
      ids.push(acc.job_id!);
    }
    const out = await Promise.all(ids.map((id) => alice.untilTerminal(id, 60_000)));
    const bobEvents = await bob.untilTerminal(ticker.job_id!, 60_000);
    const bobEnd = bobEvents.at(-1)!;
    equal(bobEnd.type, "job.result", `honest ticker: ${JSON.stringify(bobEnd.payload)}`);
    equal(bobEnd.payload.result.ticks, 20);
    return out;
  } finally {
    await alice.close();
    await bob.close();
  }
}

function expectQuota(events: Env[], cap: string, limit: number): void {
  const end = events.at(-1)!;
  equal(end.type, "job.error", JSON.stringify(end.payload));
  equal(end.payload.code, "INTERNAL_ERROR");
  equal(end.payload.details.cap, cap);
  equal(end.payload.details.limit, limit);
  match(end.payload.message, new RegExp(`quota \\(${limit}\\)`));
}

Deno.test("a job past its event quota ends with the quota's error; others run on", async () => {
  await using server = await startServer({
    agentsDir: AGENTS,
    hostHeapMb: 128,
    jobs: { maxEventsPerJob: 200 },
  });
  const [flood] = await floodBesideTicker(server, [{ count: 1_000_000, size: 10 }]);
  expectQuota(flood, "job_events", 200);
  // Exactly the quota was committed: the status event and 199 logs.
  equal(flood.filter((e) => e.type === "job.event").length, 200);
});

Deno.test("a job past its byte quota ends before writing much more, counted in UTF-8 to the event", async () => {
  const limit = 64 * 1024;
  await using server = await startServer({
    agentsDir: AGENTS,
    hostHeapMb: 128,
    jobs: { maxLogBytesPerJob: limit },
  });
  // Two, three and four UTF-8 bytes a character: counted in characters, that log would run far past.
  const [flood, wide] = await floodBesideTicker(server, [
    { count: 1_000_000, size: 1000 },
    { count: 1_000_000, size: 40, text: "é€🚀" },
  ]);
  expectQuota(flood, "job_log_bytes", limit);
  const logged = flood.filter((e) => e.type === "job.event")
    .reduce((n, e) => n + JSON.stringify(e).length, 0);
  // At most one event past the quota.
  ok(logged < limit + 2000, `${logged} bytes logged`);
  expectQuota(wide, "job_log_bytes", limit);
  // The owner received each event as it was logged; JSON.stringify spells it the same way.
  const sizes = wide.filter((e) => e.type === "job.event")
    .map((e) => new TextEncoder().encode(JSON.stringify(e)).length);
  const total = sizes.reduce((a, b) => a + b, 0);
  ok(total >= limit, `${total} bytes logged, below the quota`);
  ok(total - sizes.at(-1)! < limit, `${total} bytes logged: more than one event past the quota`);
});

Deno.test("the per-principal quota counts live jobs together and frees ended ones", async () => {
  await using server = await startServer({
    agentsDir: AGENTS,
    hostHeapMb: 128,
    jobs: { maxEventsPerJob: 10_000, maxEventsPerPrincipal: 300 },
  });
  const floods = await floodBesideTicker(server, [
    { count: 1_000_000, size: 10 },
    { count: 1_000_000, size: 10 },
  ]);
  for (const events of floods) expectQuota(events, "principal_events", 300);
  // Together they hit 300; once the first ended, the second had the rest to itself.
  const [a, b] = floods.map((f) => f.filter((e) => e.type === "job.event").length)
    .sort((x, y) => x - y);
  ok(a < 300 && b <= 300 && a + b > 300, `${a} + ${b} events committed`);
  // Both ended, so their events no longer count: a new job of alice's runs.
  const [again] = await floodBesideTicker(server, [{ count: 250, size: 10 }]);
  equal(again.at(-1)!.type, "job.result", JSON.stringify(again.at(-1)!.payload));
});

Deno.test("a burst that crosses the event quota mid-batch: a resume replays exactly what was sent", async () => {
  await using server = await startServer({
    agentsDir: AGENTS,
    hostHeapMb: 128,
    // Not a multiple of a worker's batch, so the quota falls inside one.
    jobs: { maxEventsPerJob: 150 },
  });
  const alice = new WsClient(server.url);
  const welcome = await alice.hello("alice-token");
  const acc = await alice.submit({ agent: "flooder", input: { count: 1_000_000, size: 10 } });
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  const live = (await alice.untilTerminal(acc.job_id!, 60_000)).filter((e) =>
    e.event_seq !== undefined
  );
  expectQuota(live, "job_events", 150);
  equal(live.filter((e) => e.type === "job.event").length, 150);
  live.forEach((e, i) => equal(e.event_seq, live[0].event_seq! + i, "live seqs are gap-free"));
  await alice.close();
  const again = await resume(server.url, {
    sessionId: alice.sessionId,
    resumeToken: welcome.payload.resume_token,
  });
  try {
    const replay = (await again.untilTerminal(acc.job_id!, 30_000)).filter((e) =>
      e.event_seq !== undefined
    );
    // Every envelope sent live was committed: the log replays each once, in order, nothing more.
    deepEqual(
      replay.map((e) => [e.event_seq, e.id, e.type]),
      live.map((e) => [e.event_seq, e.id, e.type]),
    );
  } finally {
    await again.close();
  }
});

Deno.test("a burst of large events arrives whole and in order (its batch is split across frames)", async () => {
  await using server = await startServer({ agentsDir: AGENTS, hostHeapMb: 128 });
  const alice = await connect(server.url, "alice-token");
  try {
    // 20 events of 100,000 characters: their batch is eight times what one frame carries.
    const acc = await alice.submit({ agent: "flooder", input: { count: 20, size: 100_000 } });
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    const out = await alice.untilTerminal(acc.job_id!, 60_000);
    equal(out.at(-1)!.type, "job.result", JSON.stringify(out.at(-1)!.payload));
    const logs = out.filter((e) => e.type === "job.event" && e.payload.kind === "log");
    equal(logs.length, 20);
    for (const e of logs) equal(e.payload.body.message, "x".repeat(100_000));
    logs.forEach((e, i) => i > 0 && ok(e.event_seq! > logs[i - 1].event_seq!, "in order"));
  } finally {
    await alice.close();
  }
});
