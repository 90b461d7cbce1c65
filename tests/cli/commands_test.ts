/**
 * The `arcp` command explains itself: version, help, unknown commands,
 * `agents`, `watch`, an unknown agent, a runtime that is not running, a
 * cancel of a finished job, Ctrl-C delivered twice (as under npx), and
 * `submit` following its job across a runtime restart.
 */
import { deepEqual, equal, match, ok } from "assert";
import { ArcpClient } from "../../src/client/mod.ts";
import { USAGE } from "../../src/cli/main.ts";
import { RUNTIME_INFO } from "../../src/runtime.ts";
import { startChildServer, startServer } from "../../testing/server.ts";
import { runCli, spawnCli } from "./_cli.ts";

const JOB_LINE = /^job (job_\w+) accepted \((\S+)\)$/m;

function env(server: { url: string }, dir: string): Record<string, string> {
  return {
    ARCP_URL: server.url,
    ARCP_TOKEN: "alice-token",
    ARCP_CLI_SESSIONS: `${dir}/cli-sessions.json`,
  };
}

Deno.test("--version prints the version; help, -h and no command print the usage and exit 0", async () => {
  const version = await runCli(["--version"], {});
  equal(version.code, 0);
  match(version.stdout, new RegExp(`^arcp ${RUNTIME_INFO.version.replaceAll(".", "\\.")} `));
  for (const args of [["help"], ["-h"], ["--help"], []]) {
    const run = await runCli(args, {});
    equal(run.code, 0, args.join(" "));
    equal(run.stdout, `${USAGE}\n`);
  }
});

Deno.test("an unknown command says so and exits 2 with the usage", async () => {
  const run = await runCli(["frobnicate"], {});
  equal(run.code, 2);
  match(run.stderr, /^arcp: unknown command "frobnicate"\nusage: arcp <command>/);
});

Deno.test("arcp agents lists every agent with its versions and default", async () => {
  await using server = await startServer();
  const run = await runCli(["agents"], env(server, server.dir));
  equal(run.code, 0, run.stderr);
  const lines = run.stdout.trimEnd().split("\n");
  const inventory = server.runtime.inventory();
  equal(lines.length, inventory.length);
  for (const [i, agent] of inventory.entries()) {
    match(
      lines[i],
      new RegExp(`^${agent.name} +${agent.versions.join(", ")}  \\(default ${agent.default}\\)$`),
    );
  }
  ok(inventory.some((a) => a.versions.length > 1), "a fixture agent with two versions");
  const json = await runCli(["agents", "--json"], env(server, server.dir));
  deepEqual(json.stdout.trimEnd().split("\n").map((l) => JSON.parse(l)), inventory);
});

Deno.test("arcp watch replays a job's history, shows its progress and ends with the result (exit 0)", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = client.submit({ agent: "ticker", input: { count: 3, interval_ms: 0 } });
  const jobId = (await job.accepted).job_id;
  await job.result;
  const run = await runCli(["watch", jobId], env(server, server.dir));
  equal(run.code, 0, run.stderr);
  const lines = run.stdout.trimEnd().split("\n");
  match(lines[0], new RegExp(`^watching ${jobId} \\(ticker@\\S+, success\\)$`));
  equal(lines.filter((l) => l.startsWith("progress:")).length, 3);
  deepEqual(JSON.parse(lines.at(-1)!), { ticks: 3 });
});

Deno.test("arcp watch follows a live job to its end; a failed job exits 1 with its code", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = client.submit({ agent: "sleeper", input: { ms: 30_000 } });
  const jobId = (await job.accepted).job_id;
  const watcher = spawnCli(["watch", jobId], env(server, server.dir));
  await watcher.waitFor(/^watching /m);
  await client.cancel(jobId);
  const run = await watcher.done();
  equal(run.code, 1);
  match(run.stderr, new RegExp(`^arcp watch: job ${jobId} cancelled: CANCELLED: `, "m"));

  const failed = client.submit({ agent: "failer", input: { message: "no luck" } });
  const failedId = (await failed.accepted).job_id;
  await failed.result.catch(() => {});
  const again = await runCli(["watch", failedId], env(server, server.dir));
  equal(again.code, 1);
  match(again.stderr, /error: \w+: .*no luck/);
});

Deno.test("an unknown agent is refused with the list of agents available", async () => {
  await using server = await startServer();
  const run = await runCli(["submit", "no-such-agent"], env(server, server.dir));
  equal(run.code, 1);
  match(run.stderr, /AGENT_NOT_AVAILABLE: .*; available: .*\becho@1\.0\.0\b/);
  for (const a of server.runtime.inventory()) ok(run.stderr.includes(`${a.name}@${a.default}`));
});

Deno.test("a runtime that is not running is named by its URL, with how to start one", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/arcp`;
  listener.close();
  for (const command of [["agents"], ["jobs"], ["submit", "echo"], ["watch", "job_x"]]) {
    const run = await runCli(command, { ARCP_URL: url, ARCP_TOKEN: "t" });
    equal(run.code, 1, command[0]);
    equal(run.stderr.trimEnd().split("\n").length, 1, run.stderr);
    match(
      run.stderr,
      new RegExp(`no ARCP runtime answers at ${url}.*npx -y deno@2\\.9\\.6 task serve`),
    );
  }
});

Deno.test("arcp cancel of a job that already ended exits 0 and says so", async () => {
  await using server = await startServer();
  const submitted = await runCli(["submit", "echo", "--input", '"x"'], env(server, server.dir));
  equal(submitted.code, 0, submitted.stderr);
  const jobId = submitted.stdout.match(JOB_LINE)![1];
  const run = await runCli(["cancel", jobId], env(server, server.dir));
  equal(run.code, 0, run.stderr);
  equal(run.stdout, `${jobId} had already ended\n`);
});

Deno.test("two SIGINTs at once (a terminal's and npx's forwarded one) still cancel and wait for the end", async () => {
  await using server = await startServer();
  const cli = spawnCli(["submit", "sleeper", "--input", '{"ms":30000}'], env(server, server.dir));
  const [, jobId] = await cli.waitFor(JOB_LINE);
  await cli.waitFor(/^status: sleeping$/m);
  cli.kill("SIGINT");
  cli.kill("SIGINT");
  const run = await cli.done();
  equal(run.code, 1, run.stderr);
  match(run.stderr, new RegExp(`cancelling ${jobId}`));
  match(run.stderr, new RegExp(`job ${jobId} cancelled: CANCELLED: `));
  ok(!run.stderr.includes("stopped waiting"), run.stderr);
});

Deno.test("arcp submit resumes its session when the runtime comes back and reports the job's real outcome", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_restart_" });
  try {
    const first = await startChildServer(`${dir}/arcp.kv`);
    const port = new URL(first.url).port;
    const cli = spawnCli(["submit", "sleeper", "--input", '{"ms":60000}'], env(first, dir));
    const [, jobId] = await cli.waitFor(JOB_LINE);
    await cli.waitFor(/^status: sleeping$/m);
    // Killed, not drained: SIGTERM would let the sleeper end at the drain deadline first.
    await first.stop("SIGKILL");
    const second = await startChildServer(`${dir}/arcp.kv`, ["--port", port]);
    try {
      const run = await cli.done();
      equal(run.code, 1, run.stderr);
      match(run.stderr, /connection lost/);
      match(run.stderr, /resumed session/);
      // The job did not survive the restart: its real outcome, not "may still be running".
      match(run.stderr, new RegExp(`job ${jobId} error: INTERNAL_ERROR: `));
      ok(!run.stderr.includes("may still be running"), run.stderr);
    } finally {
      await second.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
