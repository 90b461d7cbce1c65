/** `arcp submit`, `arcp jobs` and `arcp cancel` as child processes against a real runtime. */
import { deepEqual, equal, match, ok } from "assert";
import { ArcpClient } from "../../src/client/mod.ts";
import { startServer, type TestServer } from "../../testing/server.ts";
import { runCli, spawnCli } from "./_cli.ts";

const JOB_LINE = /^job (job_\w+) accepted \((\S+)\)$/m;

function env(server: TestServer, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ARCP_URL: server.url,
    ARCP_TOKEN: "alice-token",
    ARCP_CLI_SESSIONS: `${server.dir}/cli-sessions.json`,
    ...extra,
  };
}

type Stored = { session_id: string; resume_token: string; jobs: string[]; url: string };

async function storedSessions(server: TestServer): Promise<Stored[]> {
  try {
    return JSON.parse(await Deno.readTextFile(`${server.dir}/cli-sessions.json`)).sessions;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

async function jobStatus(server: TestServer, jobId: string): Promise<string | undefined> {
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  return (await client.listJobs()).jobs.find((j) => j.job_id === jobId)?.status;
}

Deno.test("arcp submit echo prints the job, its events, then the result JSON, and exits 0", async () => {
  await using server = await startServer();
  const run = await runCli(["submit", "echo", "--input", '{"a":1}'], env(server));
  equal(run.code, 0, run.stderr);
  const lines = run.stdout.trimEnd().split("\n");
  const [, jobId, agent] = lines[0].match(JOB_LINE)!;
  equal(agent, "echo@2.0.0");
  equal(lines[1], "status: running");
  deepEqual(JSON.parse(lines.at(-1)!), { echo: { a: 1 }, version: "2.0.0" });
  equal(run.stderr, "");
  equal(await jobStatus(server, jobId), "success");
  // The job ended, so nothing is kept for arcp cancel.
  deepEqual(await storedSessions(server), []);
});

Deno.test("arcp submit ticker prints one progress line per tick, in order, when stdout is not a terminal", async () => {
  await using server = await startServer();
  const run = await runCli(["submit", "ticker", "--input", '{"count":4}'], env(server));
  equal(run.code, 0, run.stderr);
  const progress = run.stdout.split("\n").filter((l) => l.startsWith("progress:"));
  deepEqual(progress, [
    "progress: 1/4 ticks",
    "progress: 2/4 ticks",
    "progress: 3/4 ticks",
    "progress: 4/4 ticks",
  ]);
  ok(!run.stdout.includes("\x1b"), "no terminal control codes in a pipe");
  deepEqual(JSON.parse(run.stdout.trimEnd().split("\n").at(-1)!), { ticks: 4 });
});

Deno.test("arcp submit reports a refused submit on stderr and exits 1", async () => {
  await using server = await startServer();
  const run = await runCli(["submit", "no-such-agent"], env(server));
  equal(run.code, 1);
  equal(run.stdout, "");
  match(run.stderr, /refused: AGENT_NOT_AVAILABLE: /);
});

Deno.test("arcp submit reports a failed job's code and message on stderr and exits 1", async () => {
  await using server = await startServer();
  const run = await runCli(
    ["submit", "failer", "--input", '{"message":"it broke"}'],
    env(server),
  );
  equal(run.code, 1);
  match(run.stdout, JOB_LINE);
  match(run.stderr, /error: INTERNAL_ERROR: .*it broke/);
});

Deno.test("arcp submit passes lease, expiry, runtime limit and idempotency key through", async () => {
  await using server = await startServer();
  const args = [
    "submit",
    "sleeper",
    "--input",
    '{"ms":30000}',
    "--lease",
    "fs.read=/srv/data/**",
    "--lease",
    "fs.read=/data/*.txt",
    "--expires-at",
    new Date(Date.now() + 3600_000).toISOString(),
    "--max-runtime-sec",
    "1",
    "--idempotency-key",
    "k-1",
  ];
  const run = await runCli(args, env(server));
  equal(run.code, 1);
  match(run.stderr, /timed_out: TIMEOUT: /);
  const [, jobId] = run.stdout.match(JOB_LINE)!;
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const entry = (await client.listJobs()).jobs.find((j) => j.job_id === jobId)!;
  deepEqual(entry.lease, { "fs.read": ["/srv/data/**", "/data/*.txt"] });
  // Same key, same parameters: the same job.
  const again = await runCli(args, env(server));
  equal(again.stdout.match(JOB_LINE)![1], jobId);
});

Deno.test("arcp submit usage errors exit 2; --help exits 0", async () => {
  await using server = await startServer();
  const badJson = await runCli(["submit", "echo", "--input", "{nope"], env(server));
  equal(badJson.code, 2);
  match(badJson.stderr, /--input: not valid JSON/);
  const noToken = await runCli(["submit", "echo"], { ARCP_URL: server.url });
  equal(noToken.code, 2);
  match(noToken.stderr, /no token/);
  const badLease = await runCli(["submit", "echo", "--lease", "fs.read"], env(server));
  equal(badLease.code, 2);
  const help = await runCli(["submit", "--help"], {});
  equal(help.code, 0);
  match(help.stdout, /usage: arcp submit AGENT/);
});

Deno.test("Ctrl-C during arcp submit cancels the job; the stored session holds the token, never printed", async () => {
  await using server = await startServer();
  const cli = spawnCli(["submit", "sleeper", "--input", '{"ms":30000}'], env(server));
  const [, jobId] = await cli.waitFor(JOB_LINE);
  await cli.waitFor(/^status: sleeping$/m);
  const stored = await storedSessions(server);
  equal(stored.length, 1);
  deepEqual(stored[0].jobs, [jobId]);
  equal(stored[0].url, server.url);
  ok(stored[0].resume_token.length >= 22);
  const mode = (await Deno.stat(`${server.dir}/cli-sessions.json`)).mode;
  if (mode !== null) equal(mode & 0o777, 0o600);
  cli.kill("SIGINT");
  const run = await cli.done();
  equal(run.code, 1);
  match(run.stderr, new RegExp(`cancelling ${jobId}`));
  match(run.stderr, /cancelled: CANCELLED: /);
  ok(!run.stdout.includes(stored[0].resume_token) && !run.stderr.includes(stored[0].resume_token));
  equal(await jobStatus(server, jobId), "cancelled");
  deepEqual(await storedSessions(server), []);
});

Deno.test("arcp cancel resumes the session arcp submit stored and cancels the job", async () => {
  await using server = await startServer();
  const submit = spawnCli(["submit", "sleeper", "--input", '{"ms":30000}'], env(server));
  const [, jobId] = await submit.waitFor(JOB_LINE);
  await submit.waitFor(/^status: sleeping$/m);
  const run = await runCli(["cancel", jobId, "--reason", "enough"], env(server));
  equal(run.code, 0, run.stderr);
  equal(run.stdout, `cancelling ${jobId}\n`);
  // The resume took the session over from arcp submit, which resumes it
  // back once arcp cancel is done and reports the real outcome.
  const submitted = await submit.done();
  equal(submitted.code, 1, submitted.stderr);
  match(submitted.stderr, /connection lost/);
  match(submitted.stderr, new RegExp(`job ${jobId} cancelled: CANCELLED: `));
  ok(!submitted.stderr.includes("may still be running"), submitted.stderr);
  equal(await jobStatus(server, jobId), "cancelled");
  deepEqual(await storedSessions(server), []);
});

Deno.test("arcp cancel from a session that did not submit the job reports PERMISSION_DENIED", async () => {
  await using server = await startServer();
  await using owner = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = owner.submit({ agent: "sleeper", input: { ms: 30_000 } });
  const { job_id } = await job.accepted;
  const run = await runCli(["cancel", job_id], env(server));
  equal(run.code, 1);
  match(run.stderr, /PERMISSION_DENIED: /);
  equal(await jobStatus(server, job_id), "running");
  equal(await job.cancel(), "cancelling");
});

Deno.test("arcp cancel falls back to a new session when the resume is refused, and reports both answers", async () => {
  await using server = await startServer();
  await using owner = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = owner.submit({ agent: "sleeper", input: { ms: 30_000 } });
  const { job_id } = await job.accepted;
  const stale = {
    url: server.url,
    session_id: "sess_01STALESESSION00000000000",
    resume_token: "spent-token",
    last_event_seq: 0,
    jobs: [job_id],
    saved_at: new Date().toISOString(),
  };
  await Deno.writeTextFile(
    `${server.dir}/cli-sessions.json`,
    JSON.stringify({ sessions: [stale] }),
  );
  const run = await runCli(["cancel", job_id], env(server));
  equal(run.code, 1);
  match(run.stderr, /refused to resume session sess_01STALESESSION.*RESUME_WINDOW_EXPIRED/);
  match(run.stderr, /PERMISSION_DENIED: /);
  deepEqual(await storedSessions(server), [], "a session that cannot be resumed is forgotten");
  equal(await job.cancel(), "cancelling");
});

Deno.test("arcp cancel of an unknown job reports JOB_NOT_FOUND", async () => {
  await using server = await startServer();
  const run = await runCli(["cancel", "job_01NOSUCHJOB0000000000000000"], env(server));
  equal(run.code, 1);
  match(run.stderr, /JOB_NOT_FOUND: /);
  const usage = await runCli(["cancel"], env(server));
  equal(usage.code, 2);
});

Deno.test("arcp jobs follows cursors, filters by status and agent, and honours --limit", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const ids: string[] = [];
  for (const agent of ["echo", "ticker", "echo", "failer", "echo"]) {
    const job = client.submit({ agent, input: { count: 1 } });
    await job.result.catch(() => {});
    ids.push(job.jobId!);
  }
  const all = await runCli(["jobs", "--json", "--page-size", "2"], env(server));
  equal(all.code, 0, all.stderr);
  const listed = all.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
  deepEqual(listed.map((j) => j.job_id), ids);
  deepEqual(listed.map((j) => j.status), ["success", "success", "success", "error", "success"]);

  const echoes = await runCli(
    ["jobs", "--json", "--page-size", "1", "--agent", "echo", "--status", "success"],
    env(server),
  );
  deepEqual(echoes.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).job_id), [
    ids[0],
    ids[2],
    ids[4],
  ]);
  const failed = await runCli(["jobs", "--status", "error", "--status", "cancelled"], env(server));
  const rows = failed.stdout.trimEnd().split("\n");
  match(rows[0], /^JOB_ID\s+STATUS\s+CREATED_AT\s+AGENT$/);
  deepEqual(rows.slice(1).map((r) => r.split(/\s+/)), [
    [ids[3], "error", listed[3].created_at, "failer@1.0.0"],
  ]);

  const limited = await runCli(["jobs", "--json", "--limit", "3", "--page-size", "2"], env(server));
  deepEqual(limited.stdout.trimEnd().split("\n").map((l) => JSON.parse(l).job_id), ids.slice(0, 3));

  const bob = await runCli(["jobs", "--json"], env(server, { ARCP_TOKEN: "bob-token" }));
  equal(bob.code, 0);
  equal(bob.stdout, "");

  const bad = await runCli(["jobs", "--status", "sleeping"], env(server));
  equal(bad.code, 2);
  match(bad.stderr, /--status: expected one of/);
});

Deno.test("a CLI command that cannot connect exits 1 with CONNECTION_CLOSED", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const run = await runCli(["jobs"], {
    ARCP_URL: `ws://127.0.0.1:${port}/arcp`,
    ARCP_TOKEN: "t",
  });
  equal(run.code, 1);
  match(run.stderr, /CONNECTION_CLOSED/);
});
