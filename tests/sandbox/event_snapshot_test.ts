/**
 * An event carries its body as it was when the agent emitted it: an agent
 * that reuses one body object across a burst of events, mutating it between
 * emits, sees every value it emitted arrive, in order, and one that grows
 * the object right after emitting it, past the event cap or, over a batch,
 * past the byte window, is not ended for it, in both sandboxes.
 */
import { deepEqual, equal } from "assert";
import { ROOT, startServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";
import { EVENT_WINDOW_BYTES, MAX_EVENT_BYTES } from "../../src/sandbox/worker/limits.ts";

const AGENTS = `${ROOT}/tests/fixtures/window_agents`;
const COUNT = 300;

for (const sandbox of ["process", "worker"] as const) {
  Deno.test(`a body mutated between emits arrives as it was at each emit, in order (${sandbox})`, async () => {
    await using server = await startServer({ sandbox, agentsDir: AGENTS });
    const client = await connect(server.url, "alice-token");
    try {
      const acc = await client.submit({ agent: "reused-body", input: { count: COUNT } });
      equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
      const envs = await client.untilTerminal(acc.job_id!, 60_000);
      const terminal = envs.at(-1)!;
      equal(terminal.type, "job.result", JSON.stringify(terminal.payload));
      const bodies = (kind: string) =>
        envs.filter((e) => e.type === "job.event" && e.payload.kind === kind)
          .map((e) => e.payload.body);
      const expected = Array.from({ length: COUNT }, (_, i) => i + 1);
      const ticks = bodies("x-vendor.test.tick");
      deepEqual(ticks.map((b) => b.current), expected, "vendor events");
      deepEqual(ticks.map((b) => b.nested.current), expected, "nested objects of vendor events");
      const logs = bodies("log").filter((b) => b.message === "tick");
      deepEqual(logs.map((b) => b.attributes.current), expected, "log attributes");
      deepEqual(bodies("progress").map((b) => b.current), expected, "progress events");
    } finally {
      await client.close();
    }
  });

  // Past the cap of one event, or under it but past the byte window in a batch of them: the
  // worker counted each as it was at its emit, and so must the runtime and the sandbox process.
  for (
    const [bytes, past] of [[MAX_EVENT_BYTES + 1024, "the event cap"], [
      200 * 1024,
      "the byte window",
    ]] as const
  ) {
    Deno.test(`a body grown past ${past} after its emit does not end the job (${sandbox})`, async () => {
      const count = 100;
      equal(count * bytes > EVENT_WINDOW_BYTES, true);
      await using server = await startServer({ sandbox, agentsDir: AGENTS });
      const client = await connect(server.url, "alice-token");
      try {
        const acc = await client.submit({ agent: "grown-body", input: { count, bytes } });
        equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
        const envs = await client.untilTerminal(acc.job_id!, 60_000);
        const terminal = envs.at(-1)!;
        equal(terminal.type, "job.result", JSON.stringify(terminal.payload).slice(0, 500));
        deepEqual(terminal.payload.result, { sent: count });
        const grown = envs.filter((e) =>
          e.type === "job.event" && e.payload.kind === "x-vendor.test.grow"
        ).map((e) => e.payload.body);
        deepEqual(grown, Array.from({ length: count }, (_, i) => ({ i, data: "small" })));
      } finally {
        await client.close();
      }
    });
  }
}
