/** `arcp submit` with a streamed result, as a child process against a real runtime. */
import { deepEqual, equal, ok, throws } from "assert";
import { parseSubmitArgs, SUBMIT_USAGE } from "../../src/cli/submit.ts";
import { startServer, type TestServer } from "../../testing/server.ts";
import { runCli } from "./_cli.ts";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz";
const JOB_LINE = /^job (job_\w+) accepted \(chunker@1\.0\.0\)\n/;

function expectedText(bytes: number): string {
  let out = "";
  for (let i = 0; i < bytes; i++) out += ALPHABET[i % 26];
  return out;
}

function env(server: TestServer): Record<string, string> {
  return {
    ARCP_URL: server.url,
    ARCP_TOKEN: "alice-token",
    ARCP_CLI_SESSIONS: `${server.dir}/cli-sessions.json`,
  };
}

const INPUT = '{"bytes":50000,"chunk_bytes":7000,"encoding":"base64"}';

Deno.test("arcp submit chunker --out FILE writes exactly the streamed bytes to FILE, and no chunk lines", async () => {
  await using server = await startServer();
  const out = `${server.dir}/result.bin`;
  const run = await runCli(["submit", "chunker", "--input", INPUT, "--out", out], env(server));
  equal(run.code, 0, run.stderr);
  equal(run.stderr, "");
  const bytes = await Deno.readFile(out);
  equal(bytes.length, 50_000);
  deepEqual(bytes, new TextEncoder().encode(expectedText(50_000)));
  const lines = run.stdout.trimEnd().split("\n");
  ok(JOB_LINE.test(run.stdout), run.stdout);
  deepEqual(lines.slice(1), ["status: running", `result (50000 bytes) written to ${out}`]);
  ok(!run.stdout.includes("result_chunk"));
});

Deno.test("arcp submit chunker without --out: stdout carries the raw bytes after the event lines", async () => {
  await using server = await startServer();
  const run = await runCli(["submit", "chunker", "--input", INPUT], env(server));
  equal(run.code, 0, run.stderr);
  equal(run.stderr, "");
  const head = run.stdout.match(JOB_LINE);
  ok(head, run.stdout);
  equal(run.stdout, `${head[0]}status: running\n${expectedText(50_000)}`);
});

Deno.test("arcp submit chunker with a utf8 result of many chunks writes the text unchanged", async () => {
  await using server = await startServer();
  const run = await runCli(
    ["submit", "chunker", "--input", '{"bytes":70001,"chunk_bytes":4096,"encoding":"utf8"}'],
    env(server),
  );
  equal(run.code, 0, run.stderr);
  ok(run.stdout.endsWith(`status: running\n${expectedText(70_001)}`));
});

Deno.test("arcp submit echo --out FILE writes the inline result as JSON to FILE", async () => {
  await using server = await startServer();
  const out = `${server.dir}/result.json`;
  const run = await runCli(["submit", "echo", "--input", '{"a":1}', "--out", out], env(server));
  equal(run.code, 0, run.stderr);
  const text = await Deno.readTextFile(out);
  deepEqual(JSON.parse(text), { echo: { a: 1 }, version: "2.0.0" });
  equal(run.stdout.trimEnd().split("\n").at(-1), `result (${text.length} bytes) written to ${out}`);
});

Deno.test("arcp submit reports a streamed result that failed its cap on stderr and exits 1, writing no FILE", async () => {
  await using server = await startServer({ jobs: { resultChunkBytes: 1000 } });
  const out = `${server.dir}/result.bin`;
  const run = await runCli(["submit", "chunker", "--input", INPUT, "--out", out], env(server));
  equal(run.code, 1);
  ok(run.stderr.includes("INTERNAL_ERROR"), run.stderr);
  ok(!(await Deno.stat(out).then(() => true, () => false)), "no file for a failed job");
});

Deno.test("--out is parsed, must name a file, and is in the usage", () => {
  const parsed = parseSubmitArgs(["chunker", "--out", "r.bin"], () => "t");
  equal(parsed !== "help" && parsed.out, "r.bin");
  equal((parseSubmitArgs(["chunker"], () => "t") as { out?: string }).out, undefined);
  throws(() => parseSubmitArgs(["chunker", "--out", ""], () => "t"), TypeError);
  ok(SUBMIT_USAGE.includes("--out FILE"));
});
