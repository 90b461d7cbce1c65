/**
 * Streamed results through the client: `resultBytes()`/`resultText()`
 * reassemble the `result_chunk` events of a real runtime, and refuse
 * chunks that do not add up (checked on a bare stream).
 */
import { deepEqual, equal, ok, rejects } from "assert";
import {
  ArcpClient,
  ArcpClientError,
  DEFAULT_FEATURES,
  type JobEventEnvelope,
  JobFailedError,
  type ResultChunkBody,
} from "../../src/client/mod.ts";
import { JobStream } from "../../src/client/job_stream.ts";
import { startServer } from "../../testing/server.ts";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz";

/** What `chunker` streams for `bytes` bytes. */
function expectedText(bytes: number): string {
  let out = "";
  for (let i = 0; i < bytes; i++) out += ALPHABET[i % 26];
  return out;
}

function chunkBodies(events: JobEventEnvelope[]): ResultChunkBody[] {
  return events.filter((e) => e.payload.kind === "result_chunk").map((e) =>
    e.payload.body as unknown as ResultChunkBody
  );
}

async function drain(events: AsyncIterable<JobEventEnvelope>): Promise<JobEventEnvelope[]> {
  const out: JobEventEnvelope[] = [];
  for await (const e of events) out.push(e);
  return out;
}

function isClientError(code: string, reason?: string): (e: unknown) => boolean {
  return (e: unknown) => {
    ok(e instanceof ArcpClientError, String(e));
    equal(e.code, code, e.message);
    if (reason !== undefined) equal(e.details?.reason, reason, e.message);
    return true;
  };
}

Deno.test("DEFAULT_FEATURES asks for result_chunk, and a default session negotiates it", async () => {
  ok(DEFAULT_FEATURES.includes("result_chunk"));
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  ok(client.features.includes("result_chunk"));
});

Deno.test("a 200000-byte utf8 result in 16384-byte chunks reassembles exactly, chunk_seq 0..12, more true then false", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = client.submit({
    agent: "chunker",
    input: { bytes: 200_000, chunk_bytes: 16_384, encoding: "utf8" },
  });
  const bytes = job.resultBytes();
  const events = await drain(job.events());
  const result = await job.result;
  const chunks = chunkBodies(events);

  equal(chunks.length, Math.ceil(200_000 / 16_384));
  deepEqual(chunks.map((c) => c.chunk_seq), [...Array(chunks.length).keys()]);
  deepEqual(chunks.map((c) => c.more), [...Array(chunks.length - 1).fill(true), false]);
  ok(chunks.every((c) => c.encoding === "utf8" && c.result_id === result.result_id));
  deepEqual(chunks.map((c) => c.data.length), [...Array(12).fill(16_384), 200_000 - 12 * 16_384]);

  equal(result.final_status, "success");
  equal(result.result, undefined, "no inline result");
  ok(result.result_id?.startsWith("res_"));
  equal(result.result_size, 200_000);
  const got = await bytes;
  equal(got.length, 200_000);
  deepEqual(got, new TextEncoder().encode(expectedText(200_000)));
  equal(await job.resultText(), expectedText(200_000));
  equal(await job.resultBytes(), got, "the same promise every time");
});

Deno.test("a 100000-byte base64 result reassembles to the exact bytes", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = client.submit({
    agent: "chunker",
    input: { bytes: 100_000, chunk_bytes: 30_000, encoding: "base64" },
  });
  const text = job.resultText();
  const chunks = chunkBodies(await drain(job.events()));
  const result = await job.result;
  deepEqual(chunks.map((c) => [c.chunk_seq, c.encoding, c.more]), [
    [0, "base64", true],
    [1, "base64", true],
    [2, "base64", true],
    [3, "base64", false],
  ]);
  deepEqual(
    chunks.map((c) => Uint8Array.fromBase64(c.data).length),
    [30_000, 30_000, 30_000, 10_000],
  );
  equal(result.result_size, 100_000);
  const bytes = await job.resultBytes();
  deepEqual(bytes, new TextEncoder().encode(expectedText(100_000)));
  equal(await text, expectedText(100_000));
});

Deno.test("resultBytes() called after the job ended still works while the chunks sit unread in the events buffer", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = client.submit({ agent: "chunker", input: { bytes: 5000, chunk_bytes: 1000 } });
  const result = await job.result;
  equal(result.result_size, 5000);
  equal(await job.resultText(), expectedText(5000));
  // The events are all still there for a caller that reads them now.
  equal(chunkBodies(await drain(job.events())).length, 5);
});

Deno.test("chunks read from events() before resultBytes() was asked for: RESULT_UNAVAILABLE not_collected", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = client.submit({ agent: "chunker", input: { bytes: 3000, chunk_bytes: 1000 } });
  equal(chunkBodies(await drain(job.events())).length, 3);
  await rejects(job.resultBytes(), isClientError("RESULT_UNAVAILABLE", "not_collected"));
  await rejects(job.resultText(), isClientError("RESULT_UNAVAILABLE", "not_collected"));
  equal((await job.result).result_size, 3000, "the result itself is unaffected");
});

Deno.test("an inline result: resultBytes() rejects with RESULT_UNAVAILABLE inline", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = client.submit({ agent: "echo", input: { a: 1 } });
  const bytes = job.resultBytes();
  deepEqual((await job.result).result, { echo: { a: 1 }, version: "2.0.0" });
  await rejects(bytes, isClientError("RESULT_UNAVAILABLE", "inline"));
});

Deno.test("a failed job: resultBytes() rejects with the job's own JobFailedError", async () => {
  await using server = await startServer({ jobs: { resultChunkBytes: 1000 } });
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = client.submit({ agent: "chunker", input: { bytes: 5000, chunk_bytes: 2000 } });
  const bytes = job.resultBytes();
  await rejects(bytes, (e: unknown) => {
    ok(e instanceof JobFailedError, String(e));
    equal(e.code, "INTERNAL_ERROR");
    equal(e.retryable, true);
    return true;
  });
  await rejects(job.result, JobFailedError);
});

Deno.test("a session that did not negotiate result_chunk: job.result names the result, resultBytes() rejects not_delivered", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, {
    token: "alice-token",
    features: DEFAULT_FEATURES.filter((f) => f !== "result_chunk"),
  });
  ok(!client.features.includes("result_chunk"));
  const job = client.submit({ agent: "chunker", input: { bytes: 4000, chunk_bytes: 1000 } });
  const bytes = job.resultBytes();
  const events = await drain(job.events());
  equal(chunkBodies(events).length, 0);
  const result = await job.result;
  ok(result.result_id?.startsWith("res_"));
  equal(result.result_size, 4000);
  await rejects(bytes, isClientError("RESULT_UNAVAILABLE", "not_delivered"));
});

Deno.test("a subscriber with history reassembles the same bytes as the submitter", async () => {
  await using server = await startServer();
  await using owner = await ArcpClient.connect(server.url, { token: "alice-token" });
  await using other = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = owner.submit({
    agent: "chunker",
    input: { bytes: 150_000, chunk_bytes: 40_000, encoding: "base64" },
  });
  const mine = job.resultBytes();
  const { job_id } = await job.accepted;
  const sub = await other.subscribe(job_id, { history: true, fromEventSeq: 0 });
  const theirs = sub.resultBytes();
  const expected = new TextEncoder().encode(expectedText(150_000));
  deepEqual(await mine, expected);
  deepEqual(await theirs, expected);
  equal((await sub.result).result_id, (await job.result).result_id);
});

Deno.test("an empty streamed result assembles to zero bytes", async () => {
  await using server = await startServer();
  await using client = await ArcpClient.connect(server.url, { token: "alice-token" });
  const job = client.submit({ agent: "chunker", input: { bytes: 0 } });
  equal((await job.resultBytes()).length, 0);
  equal(await job.resultText(), "");
  equal((await job.result).result_size, 0);
});

// ---- chunks that do not add up (a bare stream, as the client feeds it) ----

let seq = 0;

function chunkEvent(body: Partial<ResultChunkBody>): JobEventEnvelope {
  return {
    arcp: "1.1",
    id: `e${++seq}`,
    type: "job.event",
    session_id: "sess_1",
    job_id: "job_1",
    event_seq: seq,
    payload: {
      kind: "result_chunk",
      ts: "2026-01-01T00:00:00Z",
      body: { result_id: "res_A", encoding: "utf8", more: true, data: "", ...body },
    },
  };
}

function streamOf(
  chunks: Partial<ResultChunkBody>[],
  result: Record<string, unknown>,
): JobStream {
  const stream = new JobStream();
  stream.resultBytes();
  for (const c of chunks) stream.push(chunkEvent(c));
  stream.end({ final_status: "success", ...result });
  return stream;
}

Deno.test("a bare stream assembles utf8 and base64 chunks in order, multi-byte characters as UTF-8", async () => {
  const stream = streamOf([
    { chunk_seq: 0, data: "hé" },
    { chunk_seq: 1, data: btoa("\x00\xff"), encoding: "base64" },
    { chunk_seq: 2, data: "€", more: false },
  ], { result_id: "res_A", result_size: 3 + 2 + 3 });
  deepEqual(
    await stream.resultBytes(),
    new Uint8Array([0x68, 0xc3, 0xa9, 0x00, 0xff, 0xe2, 0x82, 0xac]),
  );
});

Deno.test("chunks that do not add up reject with RESULT_MALFORMED", async (t) => {
  const cases: Array<[string, Partial<ResultChunkBody>[], Record<string, unknown>]> = [
    [
      "a gap in chunk_seq",
      [{ chunk_seq: 0, data: "a" }, { chunk_seq: 2, data: "b", more: false }],
      {
        result_id: "res_A",
        result_size: 2,
      },
    ],
    [
      "chunk_seq out of order",
      [{ chunk_seq: 0, data: "a" }, { chunk_seq: 2, data: "c" }, {
        chunk_seq: 1,
        data: "b",
        more: false,
      }],
      { result_id: "res_A", result_size: 3 },
    ],
    [
      "a repeated chunk_seq",
      [{ chunk_seq: 0, data: "a" }, { chunk_seq: 0, data: "a", more: false }],
      { result_id: "res_A", result_size: 2 },
    ],
    [
      "two result ids",
      [{ chunk_seq: 0, data: "a" }, { chunk_seq: 1, data: "b", more: false, result_id: "res_B" }],
      { result_id: "res_A", result_size: 2 },
    ],
    ["job.result names another result", [{ chunk_seq: 0, data: "a", more: false }], {
      result_id: "res_B",
      result_size: 1,
    }],
    ["result_size too large", [{ chunk_seq: 0, data: "ab", more: false }], {
      result_id: "res_A",
      result_size: 3,
    }],
    ["result_size too small", [{ chunk_seq: 0, data: "ab", more: false }], {
      result_id: "res_A",
      result_size: 1,
    }],
    ["no result_size", [{ chunk_seq: 0, data: "ab", more: false }], { result_id: "res_A" }],
    ["no last chunk", [{ chunk_seq: 0, data: "a" }, { chunk_seq: 1, data: "b" }], {
      result_id: "res_A",
      result_size: 2,
    }],
    [
      "a chunk after the last",
      [{ chunk_seq: 0, data: "a", more: false }, { chunk_seq: 1, data: "b", more: false }],
      { result_id: "res_A", result_size: 2 },
    ],
    ["bad base64", [{ chunk_seq: 0, data: "@@@", encoding: "base64", more: false }], {
      result_id: "res_A",
      result_size: 2,
    }],
    ["an inline result after chunks", [{ chunk_seq: 0, data: "a", more: false }], {
      result: "a",
    }],
  ];
  for (const [name, chunks, result] of cases) {
    await t.step(name, async () => {
      await rejects(streamOf(chunks, result).resultBytes(), isClientError("RESULT_MALFORMED"));
    });
  }
});

Deno.test("a stream that joined after the first chunk: RESULT_UNAVAILABLE missed", async () => {
  const stream = streamOf([{ chunk_seq: 3, data: "d", more: false }], {
    result_id: "res_A",
    result_size: 4,
  });
  await rejects(stream.resultBytes(), isClientError("RESULT_UNAVAILABLE", "missed"));
});

Deno.test("a lost or unsubscribed stream rejects resultBytes() with the same error as result", async () => {
  const stream = new JobStream();
  const bytes = stream.resultBytes();
  stream.push(chunkEvent({ chunk_seq: 0, data: "a" }));
  const loss = new ArcpClientError("CONNECTION_CLOSED", "gone");
  stream.lose(loss);
  await rejects(bytes, (e: unknown) => e === loss);
  await rejects(stream.result, (e: unknown) => e === loss);
});

Deno.test("chunks keep being collected after the events iterator was dropped", async () => {
  const stream = new JobStream();
  const bytes = stream.resultText();
  const it = stream.events();
  await it.return!();
  stream.push(chunkEvent({ chunk_seq: 0, data: "ab" }));
  stream.push(chunkEvent({ chunk_seq: 1, data: "c", more: false }));
  stream.end({ final_status: "success", result_id: "res_A", result_size: 3 });
  equal(await bytes, "abc");
});

Deno.test("resultText() decodes as UTF-8, bytes that are not UTF-8 as U+FFFD", async () => {
  const stream = streamOf([
    { chunk_seq: 0, data: "ok " },
    { chunk_seq: 1, data: "/w==", encoding: "base64", more: false },
  ], { result_id: "res_A", result_size: 4 });
  equal(await stream.resultText(), "ok \ufffd");
  deepEqual(await stream.resultBytes(), new Uint8Array([0x6f, 0x6b, 0x20, 0xff]));
});
