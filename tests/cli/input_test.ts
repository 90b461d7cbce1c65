/**
 * `arcp submit --interactive` and `arcp send` as child processes against a
 * real runtime, with the reference agent `echo-input`; and the client's
 * `handle.send` and `transcript`.
 */
import { deepEqual, equal, match, ok } from "assert";
import { ArcpClient, type ArcpClientError } from "../../src/client/mod.ts";
import { startServer, type TestServer } from "../../testing/server.ts";
import { runCli, spawnCli } from "./_cli.ts";
import { SessionStore } from "../../src/cli/session_store.ts";
import { resume } from "../../testing/ws_client.ts";
import { sample, scrapeUntil } from "../operations/_observe.ts";

const JOB_LINE = /^job (job_\w+) accepted \((\S+)\)$/m;
const INPUT_KIND = "x-vendor.arcp-deno.input";

function env(server: TestServer): Record<string, string> {
  return {
    ARCP_URL: server.url,
    ARCP_TOKEN: "alice-token",
    ARCP_CLI_SESSIONS: `${server.dir}/cli-sessions.json`,
  };
}

/** The contents of a job's recorded inputs, from its transcript. */
async function recordedInputs(client: ArcpClient, jobId: string): Promise<unknown[]> {
  const out: unknown[] = [];
  let after: number | undefined;
  for (;;) {
    const page = await client.transcript(jobId, { after, limit: 2 });
    for (const item of page.items) {
      if (item.payload.kind === INPUT_KIND) {
        const body = item.payload.body as { content?: unknown; end?: true };
        out.push(body.end ? { end: body.content ?? null } : body.content);
      }
    }
    if (page.next_after === null) return out;
    after = page.next_after;
  }
}

Deno.test("arcp submit --interactive sends each stdin line as input and prints the answers as they stream", async () => {
  await using server = await startServer();
  const cli = spawnCli(["submit", "echo-input", "--interactive"], env(server), { stdin: true });
  const [, jobId] = await cli.waitFor(JOB_LINE);
  await cli.waitFor(/^log: \[info\] send me input; end it to finish$/m);
  await cli.write("hello there\n");
  // Each answer arrives before the next line is typed: a conversation, not a batch.
  await cli.waitFor(/^log: \[info\] you said: hello there$/m);
  await cli.write("second line\n");
  await cli.waitFor(/^log: \[info\] you said: second line$/m);
  await cli.closeStdin();
  const { code, stdout, stderr } = await cli.done();
  equal(code, 0, stderr);
  match(stdout, /^\{"answered":2\}$/m);
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  deepEqual(await recordedInputs(client, jobId), ["hello there", "second line", { end: null }]);
});

Deno.test("arcp send resumes the submitting session to send input; refusals exit 1", async () => {
  await using server = await startServer();
  const submit = spawnCli(["submit", "echo-input"], env(server));
  const [, jobId] = await submit.waitFor(JOB_LINE);
  await submit.waitFor(/send me input/);

  const sent = await runCli(["send", jobId, "--input", '{"q":"why?"}'], env(server));
  equal(sent.code, 0, sent.stderr);
  equal(sent.stdout.trim(), `input 1 sent to ${jobId}`);
  const ended = await runCli(["send", jobId, "--end"], env(server));
  equal(ended.code, 0, ended.stderr);
  equal(ended.stdout.trim(), `input 2 sent to ${jobId} (input ended)`);
  // Each send borrowed the session and handed it back; the submit waited, resumed and saw the end.
  const followed = await submit.done();
  equal(followed.code, 0, followed.stderr);
  match(followed.stdout, /"answered":\s*1/);

  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const sub = await client.subscribe(jobId, { history: true });
  deepEqual((await sub.result).result, { answered: 1 });
  deepEqual(await recordedInputs(client, jobId), [{ q: "why?" }, { end: null }]);

  const late = await runCli(["send", jobId, "--input", '"anyone?"'], env(server));
  equal(late.code, 1);
  match(
    late.stderr,
    /INVALID_REQUEST.*has ended \(success\)|has ended \(success\).*INVALID_REQUEST/,
  );
  const usage = await runCli(["send", jobId], env(server));
  equal(usage.code, 2);
  match(usage.stderr, /--input: required unless --end/);
});

Deno.test("arcp send waits for a resume token another process rotated and stores a moment later", async () => {
  await using server = await startServer();
  const submit = spawnCli(["submit", "echo-input"], env(server));
  const [, jobId] = await submit.waitFor(JOB_LINE);
  await submit.waitFor(/send me input/);
  // The submit dies; another process resumes its session, spending the stored token,
  // and has not stored the new one yet: the window arcp submit's own resume leaves.
  submit.kill("SIGKILL");
  await submit.done();
  const store = new SessionStore(env(server).ARCP_CLI_SESSIONS);
  const stored = (await store.find(server.url, jobId))!;
  const other = await resume(server.url, {
    sessionId: stored.session_id,
    resumeToken: stored.resume_token,
  });
  await other.close();

  const send = spawnCli(["send", jobId, "--input", '"late token"'], env(server));
  // Its first try is refused with the spent token; then the rotated one is stored.
  await scrapeUntil(
    server.http,
    (text) => (sample(text, "arcp_hellos_rejected_total", { reason: "resume_refused" }) ?? 0) > 0,
    "the refused resume",
  );
  await store.save({ ...stored, resume_token: other.resumeToken });
  const sent = await send.done();
  equal(sent.code, 0, sent.stderr);
  equal(sent.stdout.trim(), `input 1 sent to ${jobId}`);
  equal(sent.stderr, "", "no fallback to a new session");
});

Deno.test("client: handle.send feeds a job, refusals are ArcpClientErrors, transcript pages by cursor", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  ok(client.features.includes("x-arcp-deno.input"));
  const job = client.submit({ agent: "echo-input", input: { greeting: "hi" } });
  deepEqual(await job.send("one"), { job_id: (await job.accepted).job_id, input_seq: 1 });
  deepEqual((await job.send({ two: 2 }, { end: true })).input_seq, 2);
  const answers: string[] = [];
  for await (const event of job.events()) {
    if (event.payload.kind === "log") answers.push(String(event.payload.body.message));
  }
  deepEqual(answers, ["hi", "you said: one", 'you said: {"two":2}']);
  deepEqual((await job.result).result, { answered: 2 });
  const refused = await job.send("late").then(() => undefined, (err: ArcpClientError) => err);
  equal(refused?.code, "INVALID_REQUEST");
  equal(refused?.retryable, false);
  deepEqual(await recordedInputs(client, job.jobId!), ["one", { end: { two: 2 } }]);

  // A client that does not ask for the feature cannot send.
  await using plain = await ArcpClient.connect(server.url, {
    token: "alice-token",
    features: ["list_jobs"],
  });
  const notNegotiated = await plain.sendInput(job.jobId!, "x").catch((err) => err);
  equal(notNegotiated.code, "INVALID_REQUEST");
  match(notNegotiated.message, /x-arcp-deno\.input/);
});
