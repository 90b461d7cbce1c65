/**
 * Lease expiry (ARCP.md §5.3) with real agents over a real WebSocket:
 * operations before `expires_at` work, the watchdog ends a job still live
 * at `expires_at` (within the 1 s grace) with LEASE_EXPIRED, a job that
 * finishes first is untouched, and a bad `expires_at` is refused at submit.
 */
import { deepEqual, equal, match, ok } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";
import { LEASE_AGENTS } from "./_lease.ts";

/** The spec's grace after expires_at, plus room for the commit and the socket. */
const GRACE_MS = 1000;
const DELIVERY_MS = 500;

Deno.test("a job still live at expires_at ends with LEASE_EXPIRED; one that finished first is unaffected", async () => {
  await using server = await startServer({ agentsDir: LEASE_AGENTS });
  await using c = await connect(server.url);
  const expiresMs = Date.now() + 1500;
  const expiresAt = new Date(expiresMs).toISOString();
  const lease = { "tool.call": ["search"] };

  const slow = await c.submit({
    agent: "ops",
    input: {
      report: true,
      ops: [
        { op: "tool", name: "search", args: { q: "before" } },
        { op: "authorize", ns: "tool.call", target: "search" },
        { op: "sleep", ms: 10_000 },
        { op: "tool", name: "search", args: { q: "after" } },
      ],
    },
    lease_request: lease,
    lease_constraints: { expires_at: expiresAt },
  });
  equal(slow.type, "job.accepted", JSON.stringify(slow.payload));
  deepEqual(slow.payload.lease_constraints, { expires_at: expiresAt });

  const quick = await c.submit({
    agent: "ops",
    input: { ops: [{ op: "tool", name: "search", args: { q: "quick" } }] },
    lease_request: lease,
    lease_constraints: { expires_at: expiresAt },
  });
  equal(quick.type, "job.accepted", JSON.stringify(quick.payload));
  const quickEnvs = await c.untilTerminal(quick.job_id!);
  equal(quickEnvs.at(-1)!.type, "job.result", JSON.stringify(quickEnvs.at(-1)!.payload));
  ok(Date.now() < expiresMs, "the quick job finished before the expiry");

  const slowEnvs = await c.untilTerminal(slow.job_id!, 15_000);
  const arrived = Date.now();
  const terminal = slowEnvs.at(-1)!;
  equal(terminal.type, "job.error", JSON.stringify(terminal.payload));
  equal(terminal.payload.final_status, "error");
  equal(terminal.payload.code, "LEASE_EXPIRED");
  equal(terminal.payload.retryable, false);
  match(terminal.payload.message, /expire/);
  ok(arrived >= expiresMs, `ended ${expiresMs - arrived} ms before expires_at`);
  ok(
    arrived <= expiresMs + GRACE_MS + DELIVERY_MS,
    `ended ${arrived - expiresMs} ms after expires_at`,
  );

  // The operations before the expiry succeeded; nothing ran after it.
  const reports = slowEnvs
    .filter((e) => e.type === "job.event" && e.payload.kind === "log")
    .map((e) => e.payload.body.attributes);
  deepEqual(reports.map((r) => [r.i, r.op, "ok" in r.outcome]), [
    [0, "tool", true],
    [1, "authorize", true],
  ]);
  equal(reports[0].outcome.value.query, "before");
  const searches = slowEnvs.filter((e) => e.type === "job.event" && e.payload.kind === "tool_call");
  deepEqual(searches.map((e) => e.payload.body.args.q), ["before"]);

  // Exactly one terminal each, and nothing more for either job after the expiry.
  await new Promise((r) => setTimeout(r, 300));
  deepEqual(
    c.inbox.filter((e) => e.job_id === quick.job_id || e.job_id === slow.job_id),
    [],
  );
  equal(quickEnvs.filter((e) => e.type === "job.result" || e.type === "job.error").length, 1);
  equal(slowEnvs.filter((e) => e.type === "job.result" || e.type === "job.error").length, 1);
});

Deno.test("expires_at without Z, unparsable or not in the future is INVALID_REQUEST at submit", async () => {
  await using server = await startServer({ agentsDir: LEASE_AGENTS });
  await using c = await connect(server.url);
  const soon = new Date(Date.now() + 3_600_000).toISOString();
  for (
    const expiresAt of [
      soon.replace("Z", "+00:00"),
      soon.replace(/\.\d+Z$/, ""),
      soon.replace("T", " "),
      "tomorrow",
      "2020-01-01T00:00:00Z",
      new Date(Date.now() - 1000).toISOString(),
    ]
  ) {
    const res = await c.submit({
      agent: "ops",
      input: { ops: [] },
      lease_constraints: { expires_at: expiresAt },
    });
    equal(res.type, "job.error", `${expiresAt}: ${JSON.stringify(res.payload)}`);
    equal(res.payload.final_status, "error");
    equal(res.payload.code, "INVALID_REQUEST", expiresAt);
    equal(res.payload.retryable, false);
    match(res.payload.message, /expires_at/);
  }
  // A well-formed future expiry is accepted.
  const ok_ = await c.submit({
    agent: "ops",
    input: { ops: [] },
    lease_constraints: { expires_at: soon },
  });
  equal(ok_.type, "job.accepted", JSON.stringify(ok_.payload));
  equal((await c.untilTerminal(ok_.job_id!)).at(-1)!.type, "job.result");
});
