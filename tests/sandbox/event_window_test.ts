/**
 * The event credit between a sandbox and the runtime: an agent that emits
 * several windows' worth of events without pausing runs out of credit
 * again and again, and every event still arrives once, in order, with
 * consecutive seqs, in both sandboxes.
 */
import { deepEqual, equal } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";
import { EVENT_WINDOW } from "../../src/sandbox/worker/limits.ts";

/** Three windows and a part of one: the worker waits for a grant at least three times. */
const COUNT = 3 * EVENT_WINDOW + 17;

for (const sandbox of ["worker", "process"] as const) {
  Deno.test(`a ticker of ${COUNT} events through the credit window arrives whole, in order (${sandbox})`, async () => {
    await using server = await startServer({ sandbox });
    const client = await connect(server.url, "alice-token");
    try {
      const acc = await client.submit({ agent: "ticker", input: { count: COUNT, interval_ms: 0 } });
      equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
      const envs = await client.untilTerminal(acc.job_id!, 60_000);
      const terminal = envs.at(-1)!;
      equal(terminal.type, "job.result", JSON.stringify(terminal.payload));
      deepEqual(terminal.payload.result, { ticks: COUNT });
      const ticks = envs.filter((e) => e.type === "job.event" && e.payload.kind === "progress")
        .map((e) => e.payload.body.current);
      deepEqual(ticks, Array.from({ length: COUNT }, (_, i) => i + 1));
      const seqs = envs.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq as number);
      deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => seqs[0] + i));
    } finally {
      await client.close();
    }
  });
}
