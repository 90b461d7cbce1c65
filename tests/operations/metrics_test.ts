/**
 * `GET /metrics` against a real server running real jobs in sandbox
 * processes: every metric the README lists moves as the runtime works
 * (jobs started and ended by agent, live jobs, sessions, events by kind,
 * KV commit and job start latency, sandbox hosts with their memory, pool
 * sizes, credential issue and revoke failures).
 */
import { equal, ok } from "assert";
import type { CredentialProvisioner } from "../../mod.ts";
import { startServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";
import { sample, scrape, scrapeUntil } from "./_observe.ts";

/** Every sample of a metric: its label text and value. */
function samples(text: string, name: string): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) out.push([m[2] ?? "", Number(m[3])]);
  }
  return out;
}

/**
 * A provisioner whose first issue fails and whose first revoke fails (then
 * both work), as an upstream with a bad moment would.
 */
class FlakyProvisioner implements CredentialProvisioner {
  readonly name = "flaky";
  issueFailures = 1;
  revokeFailures = 1;

  issue(): Promise<{ scheme: "bearer"; value: string; endpoint: string }> {
    if (this.issueFailures-- > 0) return Promise.reject(new Error("upstream said 503"));
    return Promise.resolve({
      scheme: "bearer",
      value: `v-${crypto.randomUUID()}`,
      endpoint: "http://127.0.0.1:9/v1",
    });
  }

  revoke(): Promise<void> {
    if (this.revokeFailures-- > 0) return Promise.reject(new Error("upstream said 503"));
    return Promise.resolve();
  }
}

Deno.test("/metrics after real jobs: started/ended by agent, live jobs, sessions, events, latencies, sandbox hosts and pools, credential failures", async () => {
  const provisioner = new FlakyProvisioner();
  await using server = await startServer({
    warmPool: 1,
    credentials: { provisioner, allowInsecure: true, retryIntervalMs: 100, maxBackoffMs: 300 },
  });
  const before = await scrape(server.http);
  equal(sample(before, "arcp_jobs_live"), 0);
  equal(sample(before, "arcp_job_events_total", { kind: "progress" }), 0);
  equal(sample(before, "arcp_job_start_seconds_count"), 0);
  equal(sample(before, "arcp_credential_failures_total", { op: "issue" }), 0);
  equal(sample(before, "arcp_credential_failures_total", { op: "revoke" }), 0);
  const commitsBefore = sample(before, "arcp_kv_commit_seconds_count")!;

  await using c = await connect(server.url);
  // The upstream's bad moment: the first submit is refused, the next one gets its credential.
  const refused = await c.submit({ agent: "echo", input: 1 });
  equal(refused.type, "job.error", JSON.stringify(refused.payload));

  const ticker = await c.submit({ agent: "ticker", input: { count: 5 } });
  equal(ticker.type, "job.accepted", JSON.stringify(ticker.payload));
  equal((await c.untilTerminal(ticker.job_id!)).at(-1)!.type, "job.result");
  const sleeper = await c.submit({ agent: "sleeper", input: { ms: 60_000 } });
  equal(sleeper.type, "job.accepted", JSON.stringify(sleeper.payload));
  await c.next((e) => e.job_id === sleeper.job_id && e.payload?.body?.phase === "sleeping");

  // While the sleeper runs: one live job, one session, its sandbox process reporting memory.
  const during = await scrapeUntil(
    server.http,
    (t) => samples(t, "arcp_sandbox_host_memory_bytes").length > 0,
    "a sandbox process's memory report",
  );
  equal(sample(during, "arcp_jobs_live"), 1);
  equal(sample(during, "arcp_sessions_connected"), 1);
  ok(sample(during, "arcp_sandbox_hosts")! >= 1);
  for (const [labels, bytes] of samples(during, "arcp_sandbox_host_memory_bytes")) {
    ok(/^\{host="\d+"\}$/.test(labels), `host label ${labels}`);
    ok(bytes > 1024 * 1024, `a sandbox process of ${bytes} bytes`);
  }
  ok(sample(during, "arcp_sandbox_host_memory_limit_bytes")! > 0);
  const pools = samples(during, "arcp_sandbox_pool_processes").map(([l]) => l).sort();
  equal(
    pools.join(" "),
    '{pool="idle"} {pool="readying"} {pool="recycled"} {pool="shared"} {pool="warm"}',
  );
  equal(sample(during, "arcp_sandbox_waiting_jobs"), 0);

  c.send("job.cancel", {}, { job_id: sleeper.job_id });
  equal((await c.untilTerminal(sleeper.job_id!)).at(-1)!.payload.code, "CANCELLED");
  const after = await scrapeUntil(
    server.http,
    (t) => sample(t, "arcp_credential_failures_total", { op: "revoke" })! >= 1,
    "the failed revocation",
  );
  equal(sample(after, "arcp_jobs_live"), 0);
  equal(sample(after, "arcp_jobs_started_total", { agent: "ticker@1.0.0" }), 1);
  equal(sample(after, "arcp_jobs_started_total", { agent: "sleeper@1.0.0" }), 1);
  equal(sample(after, "arcp_jobs_started_total", { agent: "echo@1.0.0" }), undefined);
  equal(sample(after, "arcp_jobs_ended_total", { status: "success", agent: "ticker@1.0.0" }), 1);
  equal(
    sample(after, "arcp_jobs_ended_total", { status: "cancelled", agent: "sleeper@1.0.0" }),
    1,
  );
  equal(sample(after, "arcp_job_events_total", { kind: "progress" }), 5);
  // running, then sleeping: status events of both jobs.
  ok(sample(after, "arcp_job_events_total", { kind: "status" })! >= 3);
  equal(sample(after, "arcp_job_start_seconds_count"), 2);
  ok(sample(after, "arcp_job_start_seconds_sum")! > 0);
  equal(sample(after, "arcp_job_start_seconds_bucket", { le: "+Inf" }), 2);
  ok(sample(after, "arcp_kv_commit_seconds_count")! > commitsBefore + 10, "commits not timed");
  equal(sample(after, "arcp_credential_failures_total", { op: "issue" }), 1);
});
