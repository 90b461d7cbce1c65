/**
 * `GET /v1/jobs/:id/events` on one node for a job running on another, over
 * one local KV file: the stream follows the job's history as the session
 * feeds do (polled with back-off), not only when its heartbeat fires.
 */
import { deepEqual, equal, ok } from "assert";
import { ALL_FEATURES, connect, type WsClient } from "../../testing/ws_client.ts";
import { startCluster } from "./_nodes.ts";

/** Sends an input and waits for it to be accepted. */
async function input(c: WsClient, jobId: string, content?: unknown): Promise<void> {
  const req = c.send("x-arcp-deno.job.input", {
    job_id: jobId,
    ...(content === undefined ? { end: true } : { content }),
  });
  const ack = await c.next((e) => e.payload?.request_id === req.id, 30_000, "input answer");
  equal(ack.type, "x-arcp-deno.job.input_accepted", JSON.stringify(ack.payload));
}

Deno.test("SSE on one node for a job running on another: each event as the job makes it, once and in order, with no heartbeat needed", async () => {
  await using cluster = await startCluster(["n1", "n2"]);
  const http = cluster.nodes.get("n2")!.url.replace(/^ws/, "http").replace(/\/arcp$/, "");
  await using c = await connect(cluster.nodes.get("n1")!.url, "alice-token", [
    ...ALL_FEATURES,
    "x-arcp-deno.input",
  ]);
  const acc = await c.submit({ agent: "echo-input", input: { greeting: "hello" } });
  const jobId = acc.job_id!;
  const res = await fetch(`${http}/v1/jobs/${jobId}/events`, {
    headers: { authorization: "Bearer alice-token", accept: "text/event-stream" },
  });
  equal(res.status, 200);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  /** Reads the stream on until `what` is in it (or it ends). */
  const readUntil = async (what: string) => {
    while (!text.includes(what)) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`the stream ended before ${what}: ${text}`);
      text += value;
    }
  };
  // Each step waits for the reader on n2 to see what the job on n1 just did.
  await readUntil("hello");
  await input(c, jobId, "one");
  await readUntil("you said: one");
  await input(c, jobId, "two");
  await readUntil("you said: two");
  await input(c, jobId);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += value;
  }
  const ids = text.split("\n").filter((l) => l.startsWith("id: ")).map((l) => Number(l.slice(4)));
  deepEqual(ids, ids.map((_, i) => i), "every history entry once, in order");
  ok(text.trimEnd().endsWith('"final_status":"success","result":{"answered":2}}}'), text);
  // Woken by the history growing, not by the 15 s heartbeat (which writes ": ping").
  ok(!text.includes(": ping"), text);
});
