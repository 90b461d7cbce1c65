/** A job's event stream, on its own. */
import { deepEqual, equal, rejects, throws } from "assert";
import { ArcpClientError } from "../../src/client/errors.ts";
import { JobStream } from "../../src/client/job_stream.ts";
import type { JobEventEnvelope } from "../../src/client/payloads.ts";

function event(seq: number): JobEventEnvelope {
  return {
    arcp: "1.1",
    id: `e${seq}`,
    type: "job.event",
    session_id: "sess_1",
    job_id: "job_1",
    event_seq: seq,
    payload: { kind: "log", ts: "2026-01-01T00:00:00Z", body: { level: "info", message: "m" } },
  };
}

Deno.test("events are buffered until read, a waiting reader gets the next one, and the end ends the loop", async () => {
  const stream = new JobStream();
  stream.push(event(1));
  const it = stream.events();
  equal((await it.next()).value.event_seq, 1);
  const waiting = it.next();
  stream.push(event(2));
  equal((await waiting).value.event_seq, 2);
  const last = it.next();
  stream.end({ final_status: "success", result: 1 });
  equal((await last).done, true);
  stream.push(event(3));
  equal((await it.next()).done, true, "nothing after the end");
  deepEqual(await stream.result, { final_status: "success", result: 1 });
  equal(stream.ended, true);
  throws(() => stream.events(), TypeError);
});

Deno.test("a lost stream yields what it buffered, then throws once", async () => {
  const stream = new JobStream();
  stream.push(event(1));
  const loss = new ArcpClientError("CONNECTION_CLOSED", "gone");
  stream.lose(loss);
  const it = stream.events();
  equal((await it.next()).value.event_seq, 1);
  await rejects(it.next(), { code: "CONNECTION_CLOSED" });
  equal((await it.next()).done, true);
  await rejects(stream.result, { code: "CONNECTION_CLOSED" });
  equal(stream.ended, false, "lost is not ended: the job may run on");
});

Deno.test("breaking out of the loop stops buffering", async () => {
  const stream = new JobStream();
  stream.push(event(1));
  stream.push(event(2));
  for await (const _ of stream.events()) break;
  stream.push(event(3));
  stream.end({ final_status: "success" });
  deepEqual(await stream.result, { final_status: "success" });
});
