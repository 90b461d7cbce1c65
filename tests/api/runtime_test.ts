/**
 * The management API's runtime routes against a real runtime over real
 * HTTP: the summary, sessions, the runtime's event log read from a cursor,
 * diagnostics, and a drain started with `POST /v1/runtime/drain`.
 */
import { deepEqual, equal, ok } from "assert";
import { ROOT, startChildServer, startServer, TOKENS } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";
import { call, running } from "./_api.ts";

const ADMIN = { adminPrincipals: ["bob"] };

Deno.test("the runtime summary counts sessions and jobs; sessions are listed per principal", async () => {
  await using s = await startServer(ADMIN);
  const alice = await connect(s.url, "alice-token");
  const bob = await connect(s.url, "bob-token");
  const sleeping = await alice.submit({ agent: "sleeper", input: { ms: 60_000 } });
  await running(alice, sleeping.job_id!);
  const done = await alice.submit({ agent: "echo", input: 1 });
  await alice.untilTerminal(done.job_id!);

  const summary = await call(s.http, "/v1/runtime", "alice-token");
  equal(summary.status, 200);
  equal(summary.body.version, "0.1.0");
  equal(summary.body.sessions.live, 2);
  equal(summary.body.jobs.live, 1);
  equal(summary.body.jobs.by_status.running, 1);
  equal(summary.body.jobs.by_status.success, 1);
  equal(summary.body.sandbox.mode, "process");
  ok(Array.isArray(summary.body.sandbox.hosts));
  deepEqual(summary.body.drain, { state: "serving" });
  equal(summary.body.limits.max_jobs_per_principal, 100);

  const own = await call(s.http, "/v1/sessions", "alice-token");
  deepEqual(own.body.sessions.map((x: { session_id: string }) => x.session_id), [alice.sessionId]);
  equal(own.body.sessions[0].state, "attached");
  equal(own.body.sessions[0].live_jobs, 1);
  const all = await call(s.http, "/v1/sessions", "bob-token");
  deepEqual(
    all.body.sessions.map((x: { session_id: string }) => x.session_id).sort(),
    [alice.sessionId, bob.sessionId].sort(),
  );

  // The job detail of a running job carries its lease and live state.
  const job = await call(s.http, `/v1/jobs/${sleeping.job_id}`, "alice-token");
  equal(job.body.job.status, "running");
  deepEqual(job.body.job.credentials, []);
  ok("lease" in job.body.job);
  await alice.close();
  await bob.close();
});

Deno.test("the runtime's event log is durable and read from a cursor with has_more", async () => {
  await using s = await startServer(ADMIN);
  const c = await connect(s.url, "alice-token");
  const acc = await c.submit({ agent: "echo", input: "x" });
  await c.untilTerminal(acc.job_id!);

  const read = async (after: number, limit: number) =>
    (await call(s.http, `/v1/events?after=${after}&limit=${limit}`, "bob-token")).body;
  // job.ended is appended as the terminal is delivered, so a read after it finds it.
  const all = await read(-1, 100);
  const kinds = all.events.map((e: { kind: string }) => e.kind);
  deepEqual(kinds, ["runtime.started", "session.opened", "job.accepted", "job.ended"]);
  deepEqual(all.events.map((e: { index: number }) => e.index), [0, 1, 2, 3]);
  equal(all.events[1].data.session_id, c.sessionId);
  equal(all.events[2].data.job_id, acc.job_id);
  equal(all.events[3].data.status, "success");
  equal(all.events[3].data.principal, "alice");

  const first = await read(-1, 2);
  deepEqual(first.events.map((e: { index: number }) => e.index), [0, 1]);
  equal(first.next_after, 1);
  equal(first.has_more, true);
  const second = await read(first.next_after, 2);
  deepEqual(second.events.map((e: { index: number }) => e.index), [2, 3]);
  equal(second.has_more, false);
  await c.close();

  // The log outlives the process: a restart on the same KV continues it.
  await s.close();
  await using again = await startServer({ ...ADMIN, kvPath: s.kvPath });
  const after = await call(again.http, "/v1/events?after=3", "bob-token");
  deepEqual(after.body.events.map((e: { kind: string; index: number }) => [e.index, e.kind]), [
    [4, "runtime.started"],
  ]);
});

Deno.test("runtime log entries a runtime stored as objects are read on, in order with the entries stored since as texts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_rtlog_" });
  const kvPath = `${dir}/arcp.kv`;
  // What a runtime wrote before entries were texts: an entry object a key.
  const kv = await Deno.openKv(kvPath);
  const time = new Date().toISOString();
  await kv.set(["v1", "rtlog", 0], { index: 0, time, kind: "runtime.started", data: {} });
  await kv.set(["v1", "rtlog", 1], { index: 1, time, kind: "drain.started", data: {} });
  kv.close();
  // The restarted server removes its KV's folder when it closes.
  await using s = await startServer({
    ...ADMIN,
    kvPath,
    agentsDir: `${ROOT}/bench/agents`,
  });
  const c = await connect(s.url, "alice-token");
  // A reused echo's record rides with its terminal when it ends fast: its two entries then share a value.
  for (let i = 0; i < 3; i++) {
    const acc = await c.submit({ agent: "echo-reused", input: { i } });
    await c.untilTerminal(acc.job_id!);
  }
  await c.close();
  const events = (await call(s.http, "/v1/events?limit=100", "bob-token")).body.events;
  const kinds = events.map((e: { index: number; kind: string }) => [e.index, e.kind]);
  deepEqual(kinds.slice(0, 4), [
    [0, "runtime.started"],
    [1, "drain.started"],
    [2, "runtime.started"],
    [3, "session.opened"],
  ]);
  deepEqual(
    events.slice(4, 10).map((e: { kind: string }) => e.kind),
    ["job.accepted", "job.ended", "job.accepted", "job.ended", "job.accepted", "job.ended"],
  );
  deepEqual(events.map((e: { index: number }) => e.index), [...Array(events.length).keys()]);
  // Read from a cursor inside them, a page at a time.
  const page = (await call(s.http, "/v1/events?after=4&limit=2", "bob-token")).body;
  deepEqual(page.events.map((e: { index: number }) => e.index), [5, 6]);
  equal(page.has_more, true);
});

Deno.test("a job's runtime log entries (they ride in its record's and its terminal's commits) survive a SIGKILL right after its result, in order, and list_jobs finds the job", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_rtlog_" });
  const kvPath = `${dir}/arcp.kv`;
  try {
    const child = await startChildServer(kvPath);
    let ids: string[];
    try {
      await using c = await connect(child.url, "alice-token");
      // A plain submit, and one with an idempotency key (its record is committed on its own path).
      const plain = await c.submit({ agent: "echo", input: 1 });
      await c.untilTerminal(plain.job_id!);
      const keyed = await c.submit({ agent: "echo", input: 2, idempotency_key: "rtlog-k" });
      await c.untilTerminal(keyed.job_id!);
      ids = [plain.job_id!, keyed.job_id!];
    } finally {
      // Nothing gets a chance to write after the results were seen.
      await child.stop("SIGKILL");
    }

    await using again = await startServer({ ...ADMIN, kvPath });
    const events = (await call(again.http, "/v1/events?limit=100", "bob-token")).body.events;
    for (const id of ids) {
      deepEqual(
        events.filter((e: { data: { job_id?: string } }) => e.data.job_id === id)
          .map((e: { kind: string; data: { status?: string } }) => [e.kind, e.data.status]),
        [["job.accepted", undefined], ["job.ended", "success"]],
      );
    }
    const indexes = events.map((e: { index: number }) => e.index);
    deepEqual(indexes, [...indexes].sort((a, b) => a - b));
    await using c = await connect(again.url, "alice-token");
    const req = c.send("session.list_jobs", {});
    const list = await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
    deepEqual(
      list.payload.jobs.map((j: { job_id: string; status: string }) => [j.job_id, j.status]),
      ids.map((id) => [id, "success"]),
    );
  } finally {
    // The restarted server removes its KV's folder when it closes.
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("diagnostics name a generated token, no TLS off loopback, no provisioner, a local KV file and the sandbox mode", async () => {
  await using s = await startServer({
    ...ADMIN,
    sandbox: "worker",
    deployment: { host: "0.0.0.0", tls: false, generatedToken: true },
  });
  const answer = await call(s.http, "/v1/diagnostics", "bob-token");
  equal(answer.status, 200);
  const byCode = new Map(
    answer.body.items.map((i: { code: string; level: string }) => [i.code, i.level]),
  );
  equal(byCode.get("dev_token"), "warn");
  equal(byCode.get("no_tls"), "warn");
  equal(byCode.get("sandbox_workers"), "warn");
  equal(byCode.get("credentials_without_provisioner"), "info");
  equal(byCode.get("single_node"), "info");
  ok(answer.body.items.every((i: { message: string }) => i.message.length > 0));

  await using quiet = await startServer({
    ...ADMIN,
    deployment: { host: "127.0.0.1", tls: false, generatedToken: false },
  });
  const codes = (await call(quiet.http, "/v1/diagnostics", "bob-token")).body.items.map(
    (i: { code: string }) => i.code,
  );
  ok(!codes.includes("dev_token"));
  ok(!codes.includes("no_tls"));
  ok(codes.includes("sandbox_mode"));
});

Deno.test("POST /v1/runtime/drain: submits refused (retryable), /readyz 503, a job left at the deadline ends INTERNAL_ERROR, its session told", async () => {
  await using s = await startServer({ ...ADMIN, tokens: TOKENS });
  const c = await connect(s.url, "alice-token");
  const sleeper = await c.submit({ agent: "sleeper", input: { ms: 60_000 } });
  await running(c, sleeper.job_id!);
  const quick = await c.submit({ agent: "ticker", input: { count: 2, interval_ms: 50 } });

  equal(await fetch(`${s.http}/readyz`).then((r) => r.status), 200);
  const drain = await call(s.http, "/v1/runtime/drain", "bob-token", {
    method: "POST",
    body: { deadline_sec: 2 },
  });
  equal(drain.status, 202, JSON.stringify(drain.body));
  equal(drain.body.drain.state, "draining");
  ok(Date.parse(drain.body.drain.deadline) > Date.now());
  const ready = await fetch(`${s.http}/readyz`);
  equal(ready.status, 503);
  deepEqual((await ready.json()).reasons, ["draining"]);

  const refused = await c.submit({ agent: "echo", input: "late" });
  equal(refused.type, "job.error");
  equal(refused.payload.code, "INTERNAL_ERROR");
  equal(refused.payload.retryable, true);
  equal(refused.payload.details.cap, "draining");

  // A job that finishes within the deadline finishes normally ...
  equal((await c.untilTerminal(quick.job_id!)).at(-1)!.type, "job.result");
  // ... one left at the deadline ends INTERNAL_ERROR (retryable), its session told.
  const end = (await c.untilTerminal(sleeper.job_id!)).at(-1)!;
  equal(end.type, "job.error");
  equal(end.payload.code, "INTERNAL_ERROR");
  equal(end.payload.retryable, true);
  equal(end.payload.details.cap, "drain_deadline");
  await s.runtime.drained;
  equal((await call(s.http, "/v1/runtime", "bob-token")).body.drain.state, "drained");
  const events = (await call(s.http, "/v1/events?limit=100", "bob-token")).body.events
    .map((e: { kind: string }) => e.kind);
  ok(events.includes("drain.started") && events.includes("drain.finished"), events.join());
  await c.close();
});

Deno.test("a sandbox process that dies is in the runtime's event log, and the summary lists live hosts", async () => {
  await using s = await startServer({
    ...ADMIN,
    agentsDir: `${ROOT}/tests/fixtures/operations`,
  });
  const c = await connect(s.url, "alice-token");
  const victim = await c.submit({ agent: "pid-sleeper", input: {} });
  const sleeping = await c.next(
    (e) => e.job_id === victim.job_id && e.payload?.body?.phase === "sleeping",
    15_000,
    "the sandbox process's id",
  );
  const pid = Number(sleeping.payload.body.message);
  const hosts = (await call(s.http, "/v1/runtime", "bob-token")).body.sandbox.hosts;
  deepEqual(
    hosts.filter((h: { pid: number }) => h.pid === pid).map((h: { jobs: number }) => h.jobs),
    [1],
  );
  Deno.kill(pid, "SIGKILL");
  equal((await c.untilTerminal(victim.job_id!)).at(-1)!.payload.code, "INTERNAL_ERROR");
  const events = (await call(s.http, "/v1/events?limit=100", "bob-token")).body.events;
  const restarted = events.filter((e: { kind: string }) => e.kind === "sandbox.host_restarted");
  deepEqual(restarted.map((e: { data: unknown }) => e.data), [{
    job_id: victim.job_id,
    agent: "pid-sleeper@1.0.0",
  }]);
  await c.close();
});
