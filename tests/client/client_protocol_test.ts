/**
 * Client behaviour against a scripted runtime: the wire shapes it sends and
 * how it handles gaps, errors, out-of-order answers and dropped sockets.
 */
import { deepEqual, equal, match, ok, rejects } from "assert";
import {
  ArcpClient,
  ArcpClientError,
  type JobEventEnvelope,
  JobFailedError,
  type SequenceGap,
  SubmitRejectedError,
} from "../../src/client/mod.ts";
import { SESSION, startScriptedRuntime } from "./_scripted_runtime.ts";

function progress(
  jobId: string,
  seq: number,
  current: number,
): [string, unknown, Record<string, unknown>] {
  return [
    "job.event",
    { kind: "progress", ts: "2026-01-01T00:00:00Z", body: { current } },
    { job_id: jobId, event_seq: seq },
  ];
}

async function collect(events: AsyncIterable<JobEventEnvelope>): Promise<number[]> {
  const out: number[] = [];
  for await (const e of events) out.push(e.payload.body.current as number);
  return out;
}

Deno.test("the hello carries client, bearer auth, features and the resume block; a resumed welcome continues the sequence", async () => {
  await using rt = await startScriptedRuntime();
  const connecting = ArcpClient.connect(rt.url, {
    token: "tok",
    clientName: "tester",
    clientVersion: "9.9",
    features: ["list_jobs", "ack"],
    resume: { sessionId: SESSION, resumeToken: "rt_old", lastEventSeq: 41 },
    watch: ["job_A"],
  });
  const hello = await rt.welcome(["list_jobs", "ack", "subscribe"]);
  await using client = await connecting;
  equal(hello.arcp, "1.1");
  equal(hello.session_id, undefined);
  deepEqual(hello.payload, {
    client: { name: "tester", version: "9.9" },
    auth: { scheme: "bearer", token: "tok" },
    capabilities: { encodings: ["json"], features: ["list_jobs", "ack"] },
    resume: { session_id: SESSION, resume_token: "rt_old", last_event_seq: 41 },
  });
  equal(client.resumed, true);
  equal(client.sessionId, SESSION);
  equal(client.resumeToken, "rt_next");
  equal(client.lastEventSeq, 41);
  // Only the intersection counts, whatever the runtime lists.
  deepEqual([...client.features].sort(), ["ack", "list_jobs"]);

  const watched = client.watch("job_A");
  rt.send(...progress("job_A", 42, 7));
  rt.send("job.result", { final_status: "success", result: "done" }, {
    job_id: "job_A",
    event_seq: 43,
  });
  deepEqual(await collect(watched.events()), [7]);
  deepEqual(await watched.result, { final_status: "success", result: "done" });
  equal(client.lastEventSeq, 43);
});

Deno.test("a gap in event_seq is reported, breaks the session, and fails what is pending with SEQUENCE_GAP", async () => {
  await using rt = await startScriptedRuntime();
  const gaps: SequenceGap[] = [];
  const connecting = ArcpClient.connect(rt.url, { token: "t", onGap: (g) => gaps.push(g) });
  await rt.welcome();
  await using client = await connecting;
  const job = client.submit({ agent: "echo", input: 1 });
  const submit = await rt.next("job.submit");
  rt.accept(submit);
  await job.accepted;
  rt.send(...progress("job_1", 1, 1));
  rt.send(...progress("job_1", 3, 3));
  const seen: number[] = [];
  await rejects(async () => {
    for await (const e of job.events()) seen.push(e.payload.body.current as number);
  }, (e: unknown) => e instanceof ArcpClientError && e.code === "SEQUENCE_GAP");
  deepEqual(seen, [1]);
  deepEqual(gaps, [{ expected: 2, received: 3 }]);
  equal(client.lastEventSeq, 1);
  await rejects(job.result, { code: "SEQUENCE_GAP" });
  await rejects(client.ping(), { code: "SEQUENCE_GAP" });
});

Deno.test("answers are matched to submits by trace id, even out of order; a rejection rejects accepted and result", async () => {
  await using rt = await startScriptedRuntime();
  const connecting = ArcpClient.connect(rt.url, { token: "t" });
  await rt.welcome();
  await using client = await connecting;
  const first = client.submit({ agent: "echo", input: 1 });
  const second = client.submit({ agent: "nope", input: 2 });
  const s1 = await rt.next("job.submit");
  const s2 = await rt.next("job.submit");
  match(s1.trace_id!, /^[0-9a-f]{32}$/);
  equal(s1.trace_id, first.traceId);
  equal(s2.trace_id, second.traceId);
  ok(s1.trace_id !== s2.trace_id);
  deepEqual(s1.payload, { agent: "echo", input: 1 });
  rt.send("job.error", {
    final_status: "error",
    code: "AGENT_NOT_AVAILABLE",
    message: "no agent named nope",
    retryable: false,
  }, { job_id: "job_R", trace_id: s2.trace_id, event_seq: 1 });
  rt.accept(s1);
  equal((await first.accepted).job_id, "job_1");
  equal(first.jobId, "job_1");
  await rejects(second.accepted, (e: unknown) => {
    ok(e instanceof SubmitRejectedError);
    equal(e.code, "AGENT_NOT_AVAILABLE");
    equal(e.jobId, "job_R");
    return true;
  });
  await rejects(second.result, { code: "AGENT_NOT_AVAILABLE" });
  deepEqual(await collect(second.events()), []);
});

Deno.test("a session.error fails pending submits and lists but not accepted jobs", async () => {
  await using rt = await startScriptedRuntime();
  const connecting = ArcpClient.connect(rt.url, { token: "t" });
  await rt.welcome();
  await using client = await connecting;
  const running = client.submit({ agent: "echo", input: 1 });
  const s1 = await rt.next("job.submit");
  rt.accept(s1);
  await running.accepted;
  const pending = client.submit({ agent: "echo", input: 2 });
  const list = client.listJobs({ limit: 5, filter: { status: ["running"], createdAfter: "x" } });
  const listReq = await rt.next("session.list_jobs");
  deepEqual(listReq.payload, { filter: { status: ["running"], created_after: "x" }, limit: 5 });
  rt.send("session.error", { code: "INVALID_REQUEST", message: "bad frame", retryable: false });
  await rejects(pending.accepted, { code: "INVALID_REQUEST", message: "bad frame" });
  await rejects(list, { code: "INVALID_REQUEST" });
  rt.send("job.result", { final_status: "success", result: 5 }, { job_id: "job_1", event_seq: 1 });
  equal((await running.result).result, 5);
});

Deno.test("the client answers a runtime ping with a pong, and ignores frames it cannot use", async () => {
  await using rt = await startScriptedRuntime();
  const connecting = ArcpClient.connect(rt.url, { token: "t" });
  await rt.welcome();
  await using client = await connecting;
  rt.sendRaw("not json");
  rt.sendRaw(JSON.stringify({ arcp: "1.1", id: "x", type: "job.event", payload: {} }));
  rt.send("x-vendor.thing", {});
  rt.send("session.ping", { nonce: "n-7", sent_at: "2026-01-01T00:00:00Z" });
  const pong = await rt.next("session.pong");
  equal(pong.session_id, SESSION);
  equal(pong.payload.ping_nonce, "n-7");
  match(pong.payload.received_at, /Z$/);
  equal(client.lastEventSeq, 0);
});

Deno.test("a refused cancel rejects the cancel and leaves the job running", async () => {
  await using rt = await startScriptedRuntime();
  const connecting = ArcpClient.connect(rt.url, { token: "t", features: [] });
  await rt.welcome([]);
  await using client = await connecting;
  const job = client.submit({ agent: "echo", input: 1 });
  const s = await rt.next("job.submit");
  rt.accept(s);
  await job.accepted;
  const cancelling = job.cancel("why");
  const cancel = await rt.next("job.cancel");
  equal(cancel.job_id, "job_1");
  deepEqual(cancel.payload, { reason: "why" });
  rt.send("job.error", {
    final_status: "error",
    code: "PERMISSION_DENIED",
    message: "not yours",
    retryable: false,
    details: { refused: "job.cancel" },
  }, { job_id: "job_1", event_seq: 1 });
  await rejects(cancelling, { code: "PERMISSION_DENIED" });
  rt.send("job.error", {
    final_status: "cancelled",
    code: "CANCELLED",
    message: "cancelled",
    retryable: false,
  }, { job_id: "job_1", event_seq: 2 });
  await rejects(job.result, (e: unknown) => {
    ok(e instanceof JobFailedError);
    equal(e.finalStatus, "cancelled");
    return true;
  });
  equal(await job.cancel(), "ended");
});

Deno.test("a socket dropped mid-job fails the result with CONNECTION_CLOSED after the buffered events", async () => {
  await using rt = await startScriptedRuntime();
  const connecting = ArcpClient.connect(rt.url, { token: "t" });
  await rt.welcome();
  const client = await connecting;
  const job = client.submit({ agent: "echo", input: 1 });
  const s = await rt.next("job.submit");
  rt.accept(s);
  rt.send(...progress("job_1", 1, 1));
  rt.send(...progress("job_1", 2, 2));
  await job.accepted;
  const late = client.submit({ agent: "echo", input: 2 });
  rt.drop();
  await rejects(job.result, (e: unknown) => {
    ok(e instanceof ArcpClientError);
    equal(e.code, "CONNECTION_CLOSED");
    equal(e.retryable, true);
    return true;
  });
  await rejects(late.accepted, { code: "CONNECTION_CLOSED" });
  const seen: number[] = [];
  await rejects(async () => {
    for await (const e of job.events()) seen.push(e.payload.body.current as number);
  }, { code: "CONNECTION_CLOSED" });
  deepEqual(seen, [1, 2]);
  await client.close();
  await rejects((client.submit({ agent: "echo", input: 3 })).accepted, {
    code: "CONNECTION_CLOSED",
  });
});

Deno.test("a refused hello rejects connect with the runtime's code", async () => {
  await using rt = await startScriptedRuntime();
  const connecting = ArcpClient.connect(rt.url, { token: "t" });
  await rt.next("session.hello");
  rt.send("session.error", {
    code: "RESUME_WINDOW_EXPIRED",
    message: "gone",
    retryable: false,
  }, { session_id: "sess_fresh" });
  await rejects(connecting, (e: unknown) => {
    ok(e instanceof ArcpClientError);
    equal(e.code, "RESUME_WINDOW_EXPIRED");
    equal(e.message, "gone");
    return true;
  });
});

Deno.test("connect to an endpoint that is not there rejects with CONNECTION_CLOSED", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await rejects(ArcpClient.connect(`ws://127.0.0.1:${port}/arcp`, { token: "t" }), {
    code: "CONNECTION_CLOSED",
  });
});
