/**
 * Streamed results on the wire (ARCP.md §5.6), seen through a raw socket:
 * chunk order, the terminal `job.result`, the caps, agents that misuse the
 * stream, and chunks larger than one KV value replayed on resume and to a
 * subscriber.
 */
import { deepEqual, equal, ok } from "assert";
import { ROOT, startServer, type TestServer } from "../../testing/server.ts";
import { ALL_FEATURES, connect, type Env, WsClient } from "../../testing/ws_client.ts";

const AGENTS = `${ROOT}/tests/fixtures/stream_result_agents`;
const ALPHABET = "abcdefghijklmnopqrstuvwxyz";

/** What `chunker` streams for `bytes` bytes. */
function expectedText(bytes: number): string {
  let out = "";
  for (let i = 0; i < bytes; i++) out += ALPHABET[i % 26];
  return out;
}

/** The `result_chunk` events of a list of envelopes. */
function chunks(envs: Env[]): Env[] {
  return envs.filter((e) => e.type === "job.event" && e.payload.kind === "result_chunk");
}

/** Decodes and joins chunk bodies in the order given. */
function assemble(chunkEnvs: Env[]): Uint8Array {
  const pieces = chunkEnvs.map((e) =>
    e.payload.body.encoding === "base64"
      ? Uint8Array.fromBase64(e.payload.body.data)
      : new TextEncoder().encode(e.payload.body.data)
  );
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Seq-bearing envelopes must be consecutive. */
function assertGapFree(envs: Env[]): void {
  const seqs = envs.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq!);
  deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), `seqs not gap-free: ${seqs}`);
}

/** Checks the chunk protocol of one streamed result and returns its bytes. */
function checkStream(envs: Env[], encoding?: "utf8" | "base64"): Uint8Array {
  const cs = chunks(envs);
  ok(cs.length > 0, "no chunks");
  const end = envs.at(-1)!;
  equal(end.type, "job.result", JSON.stringify(end.payload));
  deepEqual(cs.map((c) => c.payload.body.chunk_seq), cs.map((_, i) => i));
  deepEqual(cs.map((c) => c.payload.body.more), cs.map((_, i) => i < cs.length - 1));
  ok(cs.every((c) => c.payload.body.result_id === end.payload.result_id), "one result_id");
  if (encoding) ok(cs.every((c) => c.payload.body.encoding === encoding));
  // Every chunk comes before the terminal message.
  ok(cs.every((c) => c.event_seq! < end.event_seq!));
  const bytes = assemble(cs);
  equal(end.payload.result_size, bytes.length);
  return bytes;
}

async function submit(c: WsClient, agent: string, input: unknown): Promise<string> {
  const acc = await c.submit({ agent, input });
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  return acc.job_id!;
}

async function jobStatus(server: TestServer, jobId: string): Promise<string | undefined> {
  await using c = await connect(server.url);
  c.send("session.list_jobs", {});
  const jobs = await c.next((e) => e.type === "session.jobs");
  return jobs.payload.jobs.find((j: { job_id: string }) => j.job_id === jobId)?.status;
}

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function assertInternalError(end: Env, pattern: RegExp): void {
  equal(end.type, "job.error", JSON.stringify(end.payload));
  equal(end.payload.final_status, "error");
  equal(end.payload.code, "INTERNAL_ERROR");
  equal(end.payload.retryable, true);
  ok(pattern.test(end.payload.message), end.payload.message);
}

Deno.test("chunker utf8: result_chunk events in chunk_seq order, then job.result with result_id and result_size and no inline result", async () => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using c = await connect(server.url);
  const jobId = await submit(c, "chunker", { bytes: 100_000, chunk_bytes: 16_384 });
  const envs = await c.untilTerminal(jobId);
  assertGapFree(envs);
  const end = envs.at(-1)!;
  ok(/^res_/.test(end.payload.result_id));
  equal(end.payload.result_size, 100_000);
  ok(!("result" in end.payload), "inline result and result_id never both");
  equal(chunks(envs).length, 7);
  deepEqual(checkStream(envs, "utf8"), new TextEncoder().encode(expectedText(100_000)));
  // Nothing of the job after the chunks but its terminal message.
  const last = chunks(envs).at(-1)!;
  equal(envs.indexOf(last), envs.length - 2);
});

Deno.test("chunker base64: the chunks decode to the exact bytes", async () => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using c = await connect(server.url);
  const jobId = await submit(c, "chunker", {
    bytes: 50_000,
    chunk_bytes: 7000,
    encoding: "base64",
  });
  const envs = await c.untilTerminal(jobId);
  equal(chunks(envs).length, 8);
  deepEqual(checkStream(envs, "base64"), new TextEncoder().encode(expectedText(50_000)));
});

Deno.test("a chunk over resultChunkBytes ends the job with INTERNAL_ERROR, retryable", async () => {
  await using server = await startServer({ agentsDir: AGENTS, jobs: { resultChunkBytes: 1000 } });
  await using c = await connect(server.url);
  // Exactly the cap is fine.
  const fits = await submit(c, "chunker", { bytes: 3000, chunk_bytes: 1000, encoding: "base64" });
  const ok1 = await c.untilTerminal(fits);
  equal(ok1.at(-1)!.type, "job.result");
  equal(ok1.at(-1)!.payload.result_size, 3000);

  const jobId = await submit(c, "chunker", { bytes: 5000, chunk_bytes: 1001 });
  const envs = await c.untilTerminal(jobId);
  assertGapFree(envs);
  assertInternalError(envs.at(-1)!, /chunk cap/);
  ok(!envs.some((e) => e.type === "job.result"));
});

Deno.test("a streamed result over resultTotalBytes ends the job with INTERNAL_ERROR, retryable", async () => {
  await using server = await startServer({ agentsDir: AGENTS, jobs: { resultTotalBytes: 10_000 } });
  await using c = await connect(server.url);
  const jobId = await submit(c, "chunker", { bytes: 20_000, chunk_bytes: 3000 });
  const envs = await c.untilTerminal(jobId);
  assertInternalError(envs.at(-1)!, /10000-byte cap/);
  // What went out before the cap was crossed stayed within it, and never claimed to be the last.
  const cs = chunks(envs);
  ok(assemble(cs).length <= 10_000);
  ok(cs.every((ch) => ch.payload.body.more === true));
});

Deno.test("an agent that streams and then returns an inline value ends with INTERNAL_ERROR", async (t) => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using c = await connect(server.url);
  for (const close of [true, false]) {
    await t.step(close ? "stream closed" : "stream left open", async () => {
      const jobId = await submit(c, "streamer", { pieces: ["ab", "cd"], close, returns: { x: 1 } });
      const envs = await c.untilTerminal(jobId);
      assertInternalError(envs.at(-1)!, /inline result after streaming/);
      ok(!envs.some((e) => e.type === "job.result"));
    });
  }
});

Deno.test("an agent that returns without closing its stream still gets a last chunk with more: false", async () => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using c = await connect(server.url);
  const jobId = await submit(c, "streamer", { pieces: ["héllo ", [0, 255, 7], "wörld"] });
  const envs = await c.untilTerminal(jobId);
  const cs = chunks(envs);
  deepEqual(cs.map((ch) => [ch.payload.body.encoding, ch.payload.body.more]), [
    ["utf8", true],
    ["base64", true],
    ["utf8", false],
  ]);
  const bytes = checkStream(envs);
  deepEqual(
    bytes,
    new Uint8Array([
      ...new TextEncoder().encode("héllo "),
      0,
      255,
      7,
      ...new TextEncoder().encode("wörld"),
    ]),
  );
  equal(envs.at(-1)!.payload.result_size, 7 + 3 + 6);
});

Deno.test("a zero-byte stream is one empty chunk with more: false, and result_size 0", async (t) => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using c = await connect(server.url);
  const cases: Array<[string, string, unknown]> = [
    ["chunker, 0 bytes", "chunker", { bytes: 0 }],
    ["opened, never written, closed", "streamer", { close: true }],
    ["opened, never written, left open", "streamer", {}],
  ];
  for (const [name, agent, input] of cases) {
    await t.step(name, async () => {
      const jobId = await submit(c, agent, input);
      const envs = await c.untilTerminal(jobId);
      const cs = chunks(envs);
      equal(cs.length, 1);
      const end = envs.at(-1)!;
      equal(end.type, "job.result", JSON.stringify(end.payload));
      deepEqual(cs[0].payload.body, {
        result_id: end.payload.result_id,
        chunk_seq: 0,
        data: "",
        encoding: "utf8",
        more: false,
      });
      equal(end.payload.result_size, 0);
      ok(!("result" in end.payload));
    });
  }
});

Deno.test("chunks larger than one KV value are replayed intact on resume", async () => {
  await using server = await startServer({ agentsDir: AGENTS });
  const c1 = new WsClient(server.url);
  const w1 = await c1.hello("alice-token");
  const bytes = 6 * 300_000 + 123;
  const jobId = await submit(c1, "chunker", { bytes, chunk_bytes: 300_000 });
  // Drop the socket once the first chunk is in.
  const first = await c1.next(
    (e) => e.job_id === jobId && e.type === "job.event" && e.payload.kind === "result_chunk",
    20_000,
    "first chunk",
  );
  const before = [
    ...c1.seen.filter((e) =>
      e.job_id === jobId && e.event_seq !== undefined && e.event_seq <= first.event_seq!
    ),
  ];
  await c1.close();
  // Let the job finish while detached, so everything after comes from the log.
  await eventually("the job succeeds", async () => (await jobStatus(server, jobId)) === "success");

  const c2 = new WsClient(server.url);
  await using _c2 = c2;
  const w2 = await c2.hello("alice-token", ALL_FEATURES, {
    session_id: c1.sessionId,
    resume_token: w1.payload.resume_token,
    last_event_seq: first.event_seq,
  });
  equal(w2.type, "session.welcome", JSON.stringify(w2.payload));
  const rest = await c2.untilTerminal(jobId, 30_000);
  equal(rest[0].event_seq, first.event_seq! + 1);
  const all = [...before, ...rest];
  assertGapFree(all);
  equal(chunks(all).length, 7);
  ok(chunks(rest).some((ch) => ch.payload.body.data.length > 65_536), "a replayed chunk > 64 KiB");
  deepEqual(checkStream(all, "utf8"), new TextEncoder().encode(expectedText(bytes)));
});

Deno.test("chunks larger than one KV value reach a subscriber with history intact", async () => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using owner = await connect(server.url);
  await using sub = await connect(server.url);
  const bytes = 3 * 300_000 + 7;
  const jobId = await submit(owner, "chunker", {
    bytes,
    chunk_bytes: 300_000,
    encoding: "base64",
  });
  const mine = await owner.untilTerminal(jobId, 30_000);
  const expected = new TextEncoder().encode(expectedText(bytes));
  deepEqual(checkStream(mine, "base64"), expected);

  sub.send("job.subscribe", { job_id: jobId, history: true });
  const s = await sub.next((e) => e.type === "job.subscribed" || e.type === "session.error");
  equal(s.type, "job.subscribed", JSON.stringify(s.payload));
  const theirs = await sub.untilTerminal(jobId, 30_000);
  assertGapFree(theirs);
  ok(theirs.every((e) => e.session_id === sub.sessionId));
  equal(chunks(theirs).length, 4);
  ok(chunks(theirs)[0].payload.body.data.length > 65_536);
  deepEqual(checkStream(theirs, "base64"), expected);
  equal(theirs.at(-1)!.payload.result_id, mine.at(-1)!.payload.result_id);
});

Deno.test("a live subscriber from another session also gets large chunks intact", async () => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using owner = await connect(server.url);
  await using sub = await connect(server.url);
  const bytes = 8 * 200_000;
  const jobId = await submit(owner, "chunker", { bytes, chunk_bytes: 200_000 });
  sub.send("job.subscribe", { job_id: jobId, history: true, from_event_seq: 0 });
  const s = await sub.next((e) => e.type === "job.subscribed" || e.type === "session.error");
  equal(s.type, "job.subscribed", JSON.stringify(s.payload));
  const theirs = await sub.untilTerminal(jobId, 30_000);
  assertGapFree(theirs);
  deepEqual(checkStream(theirs, "utf8"), new TextEncoder().encode(expectedText(bytes)));
});

Deno.test("a session that did not negotiate result_chunk gets no chunks, but the job.result with result_id and result_size", async () => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using c = await connect(
    server.url,
    "alice-token",
    ALL_FEATURES.filter((f) => f !== "result_chunk"),
  );
  const jobId = await submit(c, "chunker", { bytes: 40_000, chunk_bytes: 5000 });
  const envs = await c.untilTerminal(jobId);
  assertGapFree(envs);
  equal(chunks(envs).length, 0);
  ok(envs.every((e) => e.type !== "job.event" || e.payload.kind !== "result_chunk"));
  const end = envs.at(-1)!;
  equal(end.type, "job.result");
  ok(/^res_/.test(end.payload.result_id));
  equal(end.payload.result_size, 40_000);
  ok(!("result" in end.payload));
  // Nothing arrives late either.
  c.send("session.list_jobs", {});
  await c.next((e) => e.type === "session.jobs");
  ok(!c.seen.some((e) => e.type === "job.event" && e.payload.kind === "result_chunk"));
});

Deno.test("result_size counts utf8 data as the UTF-8 a client decodes it to, lone surrogates as U+FFFD", async (t) => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using c = await connect(server.url);
  const pieces = ["\ud800é", "a\udc00b", "x\ud83d", "😀\ud800€"];
  for (const piece of pieces) {
    await t.step(JSON.stringify(piece), async () => {
      const jobId = await submit(c, "raw-chunk", { chunks: [{ data: piece, encoding: "utf8" }] });
      const envs = await c.untilTerminal(jobId);
      equal(chunks(envs)[0]?.payload.body.data, piece);
      equal(envs.at(-1)!.payload.result_size, new TextEncoder().encode(piece).length);
    });
  }
});

Deno.test("a chunk whose base64 is not well formed ends the job with INTERNAL_ERROR and is never relayed", async (t) => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using c = await connect(server.url);
  for (const data of ["@@@@", "YWJj ZGVm", "YWJjZA", "YW=j", "YWJjZA===", "Y", "YQ==YQ=="]) {
    await t.step(JSON.stringify(data), async () => {
      const jobId = await submit(c, "raw-chunk", {
        chunks: [{ data: "YWJj", encoding: "base64" }, { data, encoding: "base64" }],
      });
      const envs = await c.untilTerminal(jobId);
      assertInternalError(envs.at(-1)!, /base64/);
      ok(chunks(envs).every((ch) => ch.payload.body.data !== data));
    });
  }
  await t.step("well-formed base64 of every length passes", async () => {
    const datas = ["", "YQ==", "YWI=", "YWJj", "+/+/"];
    const jobId = await submit(c, "raw-chunk", {
      chunks: datas.map((data) => ({ data, encoding: "base64" })),
    });
    const envs = await c.untilTerminal(jobId);
    equal(envs.at(-1)!.type, "job.result", JSON.stringify(envs.at(-1)!.payload));
    equal(envs.at(-1)!.payload.result_size, 0 + 1 + 2 + 3 + 3);
  });
});

Deno.test("an agent that aborts its stream and returns fails with INTERNAL_ERROR: a partial result never succeeds", async () => {
  await using server = await startServer({ agentsDir: AGENTS });
  await using c = await connect(server.url);
  const jobId = await submit(c, "streamer", { pieces: ["ab", "cd", "ef"], abort: "disk gone" });
  const envs = await c.untilTerminal(jobId);
  assertInternalError(envs.at(-1)!, /aborted its streamed result: disk gone/);
  ok(!envs.some((e) => e.type === "job.result"));
  ok(chunks(envs).every((ch) => ch.payload.body.more === true), "no chunk claims to be the last");
});
