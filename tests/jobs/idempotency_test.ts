import { deepEqual, equal, notEqual } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect, traceId } from "../../testing/ws_client.ts";

Deno.test("the same key and parameters return the same job_id, with the new submit's trace_id on the envelope", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const submit = { agent: "sleeper", input: { ms: 300 }, idempotency_key: "k-live" };
  const first = await c.submit(submit);
  equal(first.type, "job.accepted");
  const trace = traceId();
  const again = await c.submit(submit, { trace_id: trace });
  equal(again.type, "job.accepted");
  equal(again.job_id, first.job_id);
  equal(again.payload.job_id, first.job_id);
  equal(again.trace_id, trace);
  equal(again.payload.trace_id, first.payload.trace_id);
  equal(again.payload.accepted_at, first.payload.accepted_at);
  // Still one job: exactly one terminal message.
  const all = await c.untilTerminal(first.job_id!);
  equal(all.filter((e) => e.type === "job.result").length, 1);
  const req = c.send("session.list_jobs", {});
  const list = await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
  equal(list.payload.jobs.length, 1);
});

Deno.test("the same key and parameters after the job finished still return the same job_id", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const submit = { agent: "echo", input: { n: 1 }, idempotency_key: "k-done" };
  const first = await c.submit(submit);
  equal((await c.untilTerminal(first.job_id!)).at(-1)!.type, "job.result");
  const again = await c.submit(submit);
  equal(again.type, "job.accepted");
  equal(again.job_id, first.job_id);
  deepEqual(again.payload, first.payload);
});

Deno.test("the same key with different parameters is DUPLICATE_KEY naming the existing job", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const first = await c.submit({ agent: "echo", input: { n: 1 }, idempotency_key: "k-dup" });
  equal(first.type, "job.accepted");
  for (
    const changed of [
      { agent: "echo", input: { n: 2 } },
      { agent: "echo@1.0.0", input: { n: 1 } },
      { agent: "echo", input: { n: 1 }, lease_request: { "fs.read": ["/srv/data/**"] } },
    ]
  ) {
    const e = await c.submit({ ...changed, idempotency_key: "k-dup" });
    equal(e.type, "job.error", JSON.stringify(changed));
    equal(e.payload.final_status, "error");
    equal(e.payload.code, "DUPLICATE_KEY");
    equal(e.payload.retryable, false);
    equal(e.payload.details.existing_job_id, first.job_id);
    notEqual(e.job_id, first.job_id);
  }
});

Deno.test("idempotency keys are scoped per principal: bob with alice's key gets his own job", async () => {
  await using server = await startServer();
  await using alice = await connect(server.url, "alice-token");
  await using bob = await connect(server.url, "bob-token");
  const submit = { agent: "echo", input: "same", idempotency_key: "shared-key" };
  const a = await alice.submit(submit);
  const b = await bob.submit(submit);
  equal(a.type, "job.accepted");
  equal(b.type, "job.accepted");
  notEqual(b.job_id, a.job_id);
  deepEqual((await bob.untilTerminal(b.job_id!)).at(-1)!.payload.result, {
    echo: "same",
    version: "2.0.0",
  });
  // And alice's key still names alice's job.
  const a2 = await alice.submit(submit);
  equal(a2.job_id, a.job_id);
});

Deno.test("a replay in another session of the same principal subscribes that session to the job, without cancel authority", async () => {
  await using server = await startServer();
  await using first = await connect(server.url, "alice-token");
  await using second = await connect(server.url, "alice-token");
  const submit = { agent: "ticker", input: { count: 5, interval_ms: 60 }, idempotency_key: "k-x" };
  const acc = await first.submit(submit);
  equal(acc.type, "job.accepted");
  const again = await second.submit(submit);
  equal(again.type, "job.accepted");
  equal(again.job_id, acc.job_id);
  second.send("job.cancel", {}, { job_id: acc.job_id });
  const refused = await second.next((e) => e.job_id === acc.job_id && e.type === "job.error");
  equal(refused.payload.code, "PERMISSION_DENIED");
  deepEqual(refused.payload.details, { refused: "job.cancel" });
  // The second session sees the job's full history and its terminal, in its own seq space.
  const seen = await second.untilTerminal(acc.job_id!);
  const end = seen.at(-1)!;
  equal(end.type, "job.result");
  deepEqual(end.payload.result, { ticks: 5 });
  const progress = seen.filter((e) => e.payload?.kind === "progress");
  deepEqual(progress.map((e) => e.payload.body.current), [1, 2, 3, 4, 5]);
  const seqs = second.seen.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq);
  deepEqual(seqs, seqs.map((_, i) => i + 1));
  equal((await first.untilTerminal(acc.job_id!)).at(-1)!.type, "job.result");
});

Deno.test("a replay of a finished job in another session of the same principal delivers its history and terminal", async () => {
  await using server = await startServer();
  await using first = await connect(server.url, "alice-token");
  const submit = { agent: "ticker", input: { count: 3 }, idempotency_key: "k-finished" };
  const acc = await first.submit(submit);
  equal((await first.untilTerminal(acc.job_id!)).at(-1)!.type, "job.result");
  await using second = await connect(server.url, "alice-token");
  const again = await second.submit(submit);
  equal(again.type, "job.accepted");
  equal(again.job_id, acc.job_id);
  const seen = await second.untilTerminal(acc.job_id!, 5_000);
  deepEqual(
    seen.filter((e) => e.payload?.kind === "progress").map((e) => e.payload.body.current),
    [1, 2, 3],
  );
  deepEqual(seen.at(-1)!.payload.result, { ticks: 3 });
  const seqs = second.seen.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq);
  deepEqual(seqs, seqs.map((_, i) => i + 1));
});

Deno.test("idempotency keys survive a runtime restart", async () => {
  const first = await startServer();
  const submit = { agent: "echo", input: { keep: true }, idempotency_key: "k-restart" };
  let jobId: string;
  try {
    const c = await connect(first.url);
    const acc = await c.submit(submit);
    equal(acc.type, "job.accepted");
    jobId = acc.job_id!;
    equal((await c.untilTerminal(jobId)).at(-1)!.type, "job.result");
    await c.close();
  } finally {
    await first.close();
  }
  await using second = await startServer({ kvPath: first.kvPath });
  await using c = await connect(second.url);
  const again = await c.submit(submit);
  equal(again.type, "job.accepted");
  equal(again.job_id, jobId);
  const changed = await c.submit({ ...submit, input: { keep: false } });
  equal(changed.payload.code, "DUPLICATE_KEY");
  equal(changed.payload.details.existing_job_id, jobId);
});
