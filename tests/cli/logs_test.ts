/**
 * The operator log of a real `arcp serve`: JSON lines that parse, one line
 * per job accepted and ended (id, agent, principal, status, duration, error
 * code, an agent's message), level filtering, and never a secret: bearer
 * tokens (good or bad), resume tokens and credential values stay out.
 */
import { equal, match, ok } from "assert";
import { ROOT } from "../../testing/server.ts";
import { WsClient } from "../../testing/ws_client.ts";
import { spawnCli } from "./_cli.ts";

type Line = Record<string, unknown> & { level: string; msg: string };

async function withServer(
  flags: string[],
  use: (url: string) => Promise<void>,
): Promise<{ stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_logs_" });
  const serve = spawnCli([
    "serve",
    "--port",
    "0",
    "--kv",
    `${dir}/arcp.kv`,
    "--agents",
    `${ROOT}/agents`,
    "--token",
    "alice-secret-token=alice",
    ...flags,
  ], {});
  try {
    const [, url] = await serve.waitFor(/listening on (ws:\/\/\S+\/arcp)/);
    await use(url);
  } finally {
    serve.kill("SIGTERM");
  }
  const run = await serve.done();
  await Deno.remove(dir, { recursive: true });
  return run;
}

/** Runs echo, a failing job, and a cancelled job holding a credential; returns the secrets seen. */
async function jobs(url: string): Promise<{ secrets: string[]; ids: Record<string, string> }> {
  const secrets = ["alice-secret-token", "wrong-secret-token"];
  const bad = new WsClient(url);
  equal((await bad.hello("wrong-secret-token")).payload.code, "UNAUTHENTICATED");
  await bad.closed();
  const c = new WsClient(url);
  const welcome = await c.hello("alice-secret-token");
  secrets.push(welcome.payload.resume_token);
  const ids: Record<string, string> = {};
  const echo = await c.submit({ agent: "echo", input: "hi" });
  ids.echo = echo.job_id!;
  equal((await c.untilTerminal(ids.echo)).at(-1)!.type, "job.result");
  const failer = await c.submit({ agent: "failer", input: { message: "kaput: the disk ate it" } });
  ids.failer = failer.job_id!;
  equal((await c.untilTerminal(ids.failer)).at(-1)!.type, "job.error");
  const sleeper = await c.submit({
    agent: "sleeper",
    input: { ms: 60_000 },
    lease_request: { "model.use": ["gpt-4o-mini"] },
  });
  equal(sleeper.type, "job.accepted", JSON.stringify(sleeper.payload));
  ids.sleeper = sleeper.job_id!;
  const credential = sleeper.payload.credentials?.[0]?.value;
  ok(credential, `no credential issued: ${JSON.stringify(sleeper.payload)}`);
  secrets.push(credential);
  c.send("job.cancel", {}, { job_id: ids.sleeper });
  const end = (await c.untilTerminal(ids.sleeper)).at(-1)!;
  await c.close();
  // A resume rotates the token: the new one is a secret too.
  const again = new WsClient(url);
  const resumed = await again.hello("alice-secret-token", undefined, {
    session_id: c.sessionId,
    resume_token: welcome.payload.resume_token,
    last_event_seq: end.event_seq ?? 0,
  });
  equal(resumed.type, "session.welcome", JSON.stringify(resumed.payload));
  secrets.push(resumed.payload.resume_token);
  await again.close();
  return { secrets, ids };
}

Deno.test("--log-format json: every line parses; jobs accepted and ended are lines; no secret appears", async () => {
  let seen: Awaited<ReturnType<typeof jobs>> | undefined;
  const run = await withServer(
    ["--log-format", "json", "--credentials", "local", "--allow-insecure-credentials"],
    async (url) => {
      seen = await jobs(url);
    },
  );
  const lines: Line[] = run.stderr.trimEnd().split("\n").map((l) => JSON.parse(l));
  for (const l of lines) {
    match(String(l.time), /^\d{4}-\d\d-\d\dT/);
    ok(["debug", "info", "warn", "error"].includes(l.level), JSON.stringify(l));
  }
  const { ids, secrets } = seen!;
  const about = (msg: string, id: string) => lines.find((l) => l.msg === msg && l.job_id === id);
  for (const [agent, id] of Object.entries(ids)) {
    const accepted = about("job accepted", id);
    ok(accepted, `no accepted line for ${agent}`);
    match(String(accepted.agent), new RegExp(`^${agent}@`));
    equal(accepted.principal, "alice");
    const ended = about("job ended", id);
    ok(ended, `no ended line for ${agent}`);
    equal(ended.principal, "alice");
    ok(typeof ended.duration_ms === "number" && ended.duration_ms >= 0);
  }
  equal(about("job ended", ids.echo)!.status, "success");
  equal(about("job ended", ids.echo)!.level, "info");
  const failed = about("job ended", ids.failer)!;
  equal(failed.status, "error");
  equal(failed.level, "warn");
  ok(typeof failed.code === "string");
  match(String(failed.error), /kaput: the disk ate it/);
  const cancelled = about("job ended", ids.sleeper)!;
  equal(cancelled.status, "cancelled");
  equal(cancelled.code, "CANCELLED");
  for (const secret of secrets) {
    ok(!run.stderr.includes(secret), `a secret reached the log: ${secret.slice(0, 6)}…`);
  }
});

Deno.test("--log-level warn drops info lines and keeps a failed job's line", async () => {
  let failerId = "";
  const run = await withServer(["--log-level", "warn"], async (url) => {
    const c = new WsClient(url);
    await c.hello("alice-secret-token");
    const echo = await c.submit({ agent: "echo", input: "hi" });
    await c.untilTerminal(echo.job_id!);
    const failer = await c.submit({ agent: "failer", input: { message: "nope" } });
    failerId = failer.job_id!;
    await c.untilTerminal(failerId);
    await c.close();
  });
  const lines = run.stderr.trimEnd().split("\n");
  ok(!lines.some((l) => / INFO /.test(l)), run.stderr);
  ok(
    lines.some((l) => / WARN job ended /.test(l) && l.includes(failerId) && l.includes("nope")),
    run.stderr,
  );
});
