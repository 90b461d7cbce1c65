/**
 * Per-principal caps answer with INTERNAL_ERROR (retryable) and details.cap
 * instead of exhausting the runtime, and never affect other principals.
 */
import { equal, ok } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect, WsClient } from "../../testing/ws_client.ts";

Deno.test("a principal at its cap of connected sessions is refused; others and detached sessions do not count", async () => {
  await using server = await startServer({ sessions: { maxSessionsPerPrincipal: 2 } });
  const a1 = await connect(server.url);
  const a2 = await connect(server.url);
  const a3 = new WsClient(server.url);
  const refused = await a3.hello("alice-token");
  equal(refused.type, "session.error");
  equal(refused.payload.code, "INTERNAL_ERROR");
  equal(refused.payload.retryable, true);
  equal(refused.payload.details.cap, "sessions");
  await a3.closed();
  const bob = await connect(server.url, "bob-token");
  await a1.close();
  // The detached session no longer counts against the cap.
  await new Promise((r) => setTimeout(r, 100));
  const a4 = await connect(server.url);
  await Promise.all([a2.close(), a4.close(), bob.close()]);
});

Deno.test("a principal at its cap of live jobs gets INTERNAL_ERROR with details.cap; after one ends it may submit again", async () => {
  // The principal's cap, not the sandbox's: on a busy machine a job waiting a few hundred ms
  // for a process would make the next submit a (correct) sandbox_busy, so the sandbox may queue.
  await using server = await startServer({
    jobs: { maxJobsPerPrincipal: 2 },
    sandboxQueueMs: 60_000,
    sandboxWaitMs: 60_000,
  });
  await using alice = await connect(server.url);
  await using bob = await connect(server.url, "bob-token");
  const j1 = await alice.submit({ agent: "sleeper", input: { ms: 30000 } });
  const j2 = await alice.submit({ agent: "sleeper", input: { ms: 30000 } });
  equal(j1.type, "job.accepted");
  equal(j2.type, "job.accepted");
  const j3 = await alice.submit({ agent: "echo", input: 1 });
  equal(j3.type, "job.error");
  equal(j3.payload.code, "INTERNAL_ERROR");
  equal(j3.payload.retryable, true);
  equal(j3.payload.details.cap, "concurrent_jobs");
  ok(typeof j3.event_seq === "number");
  const b = await bob.submit({ agent: "echo", input: 1 });
  equal(b.type, "job.accepted", "another principal is unaffected");
  // Bob's job done, no job waits for a sandbox process when alice resubmits: on a loaded
  // machine a backlog of one can refuse it retryably (sandbox_busy), which is not the cap.
  equal((await bob.untilTerminal(b.job_id!)).at(-1)!.type, "job.result");
  alice.send("job.cancel", {}, { job_id: j1.job_id });
  await alice.untilTerminal(j1.job_id!);
  const j4 = await alice.submit({ agent: "echo", input: 2 });
  equal(j4.type, "job.accepted", JSON.stringify(j4.payload));
  alice.send("job.cancel", {}, { job_id: j2.job_id });
  await alice.untilTerminal(j2.job_id!);
});

Deno.test("500 concurrent hellos of one principal against a cap of 20: exactly 20 are welcomed", async () => {
  await using server = await startServer({ sessions: { maxSessionsPerPrincipal: 20 } });
  const clients = Array.from({ length: 500 }, () => new WsClient(server.url));
  try {
    await Promise.all(clients.map((c) => c.opened()));
    const answers = await Promise.all(clients.map((c) => c.hello("alice-token")));
    const welcomed = answers.filter((a) => a.type === "session.welcome").length;
    equal(welcomed, 20);
    for (const a of answers.filter((a) => a.type === "session.error")) {
      equal(a.payload.details.cap, "sessions");
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

Deno.test("500 concurrent submits of one principal against a cap of 10 live jobs: exactly 10 are accepted", async () => {
  await using server = await startServer({ jobs: { maxJobsPerPrincipal: 10 } });
  const sessions = await Promise.all(Array.from({ length: 25 }, () => connect(server.url)));
  try {
    const answers = await Promise.all(
      sessions.flatMap((s) =>
        Array.from({ length: 20 }, () => s.submit({ agent: "sleeper", input: { ms: 30_000 } }))
      ),
    );
    const accepted = answers.filter((a) => a.type === "job.accepted");
    equal(accepted.length, 10);
    for (const a of answers.filter((a) => a.type === "job.error")) {
      equal(a.payload.details.cap, "concurrent_jobs");
    }
    equal((await fetch(`${server.http}/healthz`).then((r) => r.json())).ok, true);
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
  }
});
