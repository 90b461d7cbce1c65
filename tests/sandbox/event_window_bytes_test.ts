/**
 * The event window in bytes: an agent emitting many large events waits for
 * credit and every event arrives whole and in order, while one that posts
 * large events without waiting is ended, in both sandboxes.
 */
import { deepEqual, equal, match } from "assert";
import { ROOT, startServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";
import { EVENT_WINDOW, EVENT_WINDOW_BYTES } from "../../src/sandbox/worker/limits.ts";

const AGENTS = `${ROOT}/tests/fixtures/window_agents`;
const COUNT = 200;
const BYTES = 200 * 1024;

for (const sandbox of ["worker", "process"] as const) {
  Deno.test(`${COUNT} events of ${BYTES} bytes wait for byte credit and arrive whole, in order (${sandbox})`, async () => {
    // Several byte windows, yet far fewer events than the event window: only the bytes make it wait.
    equal(COUNT * BYTES > 4 * EVENT_WINDOW_BYTES && COUNT < EVENT_WINDOW, true);
    await using server = await startServer({ sandbox, agentsDir: AGENTS });
    const client = await connect(server.url, "alice-token");
    try {
      const acc = await client.submit({ agent: "blobs", input: { count: COUNT, bytes: BYTES } });
      equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
      const envs = await client.untilTerminal(acc.job_id!, 60_000);
      const terminal = envs.at(-1)!;
      equal(terminal.type, "job.result", JSON.stringify(terminal.payload));
      deepEqual(terminal.payload.result, { blobs: COUNT });
      const blobs = envs.filter((e) =>
        e.type === "job.event" && e.payload.kind === "x-vendor.test.blob"
      )
        .map((e) => e.payload.body);
      deepEqual(blobs.map((b) => b.i), Array.from({ length: COUNT }, (_, i) => i));
      const filler = "b".repeat(BYTES);
      equal(blobs.every((b) => b.data === `${b.i}:${filler}`), true, "an event arrived altered");
      const seqs = envs.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq as number);
      deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => seqs[0] + i));
    } finally {
      await client.close();
    }
  });

  Deno.test(`posting large events without waiting for credit ends the job at the byte bound (${sandbox})`, async () => {
    await using server = await startServer({ sandbox, agentsDir: AGENTS });
    const client = await connect(server.url, "alice-token");
    try {
      const acc = await client.submit({ agent: "raw-blob-flood", input: {} });
      equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
      const terminal = (await client.untilTerminal(acc.job_id!, 60_000)).at(-1)!;
      equal(terminal.type, "job.error", JSON.stringify(terminal.payload));
      equal(terminal.payload.code, "INTERNAL_ERROR", JSON.stringify(terminal.payload));
      match(terminal.payload.message, /bytes of events/);
    } finally {
      await client.close();
    }
  });
}
