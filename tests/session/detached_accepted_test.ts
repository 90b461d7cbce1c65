/**
 * A delegated child accepted while its session is detached: on resume the
 * client gets its `job.accepted` ahead of the replayed events.
 */
import { equal, ok } from "assert";
import { ROOT, startServer } from "../../testing/server.ts";
import { ALL_FEATURES, connect, WsClient } from "../../testing/ws_client.ts";

Deno.test("a child's job.accepted issued while the session was detached is re-sent first on resume", async () => {
  await using server = await startServer({ agentsDir: `${ROOT}/tests/fixtures/delegation_agents` });
  const c = await connect(server.url);
  const welcome = c.seen.find((e) => e.type === "session.welcome")!;
  const parent = await c.submit({
    agent: "planner",
    input: {
      parallel: true,
      staggerMs: 1200,
      delegations: [{ agent: "echo", input: 1 }, { agent: "echo", input: 2 }],
    },
    lease_request: { "agent.delegate": ["echo"] },
  });
  const first = await c.next((e) =>
    e.type === "job.accepted" && e.payload.parent_job_id === parent.job_id
  );
  const lastSeen = Math.max(
    0,
    ...c.seen.filter((e) => typeof e.event_seq === "number").map((e) => e.event_seq!),
  );
  await c.close();
  // The second child starts about 1.2 s after the first, while nobody is attached.
  await new Promise((r) => setTimeout(r, 2500));
  const r = new WsClient(server.url);
  const w = await r.hello("alice-token", ALL_FEATURES, {
    session_id: c.sessionId,
    resume_token: welcome.payload.resume_token,
    last_event_seq: lastSeen,
  });
  equal(w.type, "session.welcome");
  const terminal = (await r.untilTerminal(parent.job_id!)).at(-1)!;
  equal(terminal.type, "job.result");
  const afterWelcome = r.seen.slice(r.seen.indexOf(w) + 1);
  const second = afterWelcome.findIndex((e) =>
    e.type === "job.accepted" && e.payload.parent_job_id === parent.job_id &&
    e.job_id !== first.job_id
  );
  ok(second >= 0, "the second child's job.accepted was not re-sent");
  const firstReplayed = afterWelcome.findIndex((e) => typeof e.event_seq === "number");
  ok(second < firstReplayed, "job.accepted must come ahead of the replayed events");
  await r.close();
});
