/**
 * Hostile agents run as real agents in real sandbox host processes. Each
 * runs beside an honest ticker of another principal, which must complete
 * correctly, and the runtime must still accept sessions afterwards.
 */
import { equal, match, ok } from "assert";
import { ROOT, startServer, type TestServer } from "../../testing/server.ts";
import { connect, type Env, type WsClient } from "../../testing/ws_client.ts";

const HOSTILE = `${ROOT}/tests/fixtures/hostile`;

interface Outcome {
  terminal: Env;
  events: Env[];
}

async function runHostile(
  server: TestServer,
  agent: string,
  input: unknown,
  lease: Record<string, string[]> = {},
  extra: Record<string, unknown> = {},
  during?: (alice: WsClient, jobId: string) => Promise<void>,
): Promise<Outcome> {
  const bob = await connect(server.url, "bob-token");
  const alice = await connect(server.url, "alice-token");
  try {
    const ticker = await bob.submit({ agent: "ticker", input: { count: 30, interval_ms: 20 } });
    equal(ticker.type, "job.accepted", JSON.stringify(ticker.payload));
    const acc = await alice.submit({ agent, input, lease_request: lease, ...extra });
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    if (during) await during(alice, acc.job_id!);
    const events = await alice.untilTerminal(acc.job_id!, 30_000);
    const bobEvents = await bob.untilTerminal(ticker.job_id!, 30_000);
    const bobTerminal = bobEvents.at(-1)!;
    equal(bobTerminal.type, "job.result", `honest ticker: ${JSON.stringify(bobTerminal.payload)}`);
    equal(bobTerminal.payload.result.ticks, 30);
    equal(bobEvents.filter((e) => e.payload?.kind === "progress").length, 30);
    const again = await connect(server.url, "bob-token");
    await again.close();
    return { terminal: events.at(-1)!, events };
  } finally {
    await alice.close();
    await bob.close();
  }
}

function expectError(outcome: Outcome, code: string, pattern?: RegExp): void {
  equal(outcome.terminal.type, "job.error", JSON.stringify(outcome.terminal.payload));
  equal(outcome.terminal.payload.code, code, JSON.stringify(outcome.terminal.payload));
  if (pattern) match(outcome.terminal.payload.message, pattern);
}

Deno.test("hostile agents are denied or contained, and honest jobs of others finish", async (t) => {
  await using server = await startServer({ agentsDir: HOSTILE, hostHeapMb: 128 });
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_hostile_" }));
  const lease = { "fs.read": [`${dir}/**`], "fs.write": [`${dir}/**`] };
  await Deno.writeTextFile(`${dir}/ok.txt`, "fine");
  const outside = await Deno.makeTempDir({ prefix: "arcp_outside_" });

  await t.step("reading /etc/passwd with a lease on a temp dir", async () => {
    expectError(await runHostile(server, "read-passwd", {}, lease), "PERMISSION_DENIED");
  });
  await t.step("a symlink in the leased dir that existed before the job", async () => {
    const linked = await Deno.makeTempDir({ prefix: "arcp_linked_" });
    await Deno.symlink("/etc", `${linked}/link`);
    const out = await runHostile(server, "symlink-read", { path: `${linked}/link/passwd` }, {
      "fs.read": [`${linked}/**`],
    });
    expectError(out, "PERMISSION_DENIED", /symlink/);
    await Deno.remove(linked, { recursive: true });
  });
  await t.step("a symlink the job tries to create", async () => {
    expectError(await runHostile(server, "symlink-make", { dir }, lease), "PERMISSION_DENIED");
    await Deno.lstat(`${dir}/escape`).then(() => ok(false, "symlink was created"), () => {});
  });
  await t.step("../ escapes from the leased dir", async () => {
    expectError(await runHostile(server, "dotdot-read", { dir }, lease), "PERMISSION_DENIED");
  });
  await t.step("writing outside the lease", async () => {
    expectError(
      await runHostile(server, "write-outside", { path: `${outside}/owned.txt` }, lease),
      "PERMISSION_DENIED",
    );
    await Deno.stat(`${outside}/owned.txt`).then(() => ok(false, "file was written"), () => {});
  });
  await t.step(
    "asking Deno for more permissions at run time is a denial, never a prompt",
    async () => {
      expectError(await runHostile(server, "permission-request", {}, lease), "PERMISSION_DENIED");
    },
  );
  await t.step("BroadcastChannel to another job", async () => {
    expectError(await runHostile(server, "broadcast", {}), "PERMISSION_DENIED", /BroadcastChannel/);
  });
  await t.step("node:worker_threads' BroadcastChannel to another job", async () => {
    expectError(
      await runHostile(server, "broadcast-node", {}),
      "PERMISSION_DENIED",
      /BroadcastChannel/,
    );
  });
  await t.step("the caches API", async () => {
    expectError(await runHostile(server, "caches", {}), "PERMISSION_DENIED", /caches/);
  });
  await t.step("import of an npm package at run time", async () => {
    expectError(await runHostile(server, "import-npm", {}), "PERMISSION_DENIED");
  });
  await t.step("import of a remote URL", async () => {
    expectError(await runHostile(server, "import-remote", {}), "PERMISSION_DENIED");
  });
  await t.step("import of a local file outside the lease", async () => {
    await Deno.writeTextFile(`${outside}/mod.ts`, "export const x = 1;");
    expectError(
      await runHostile(server, "import-local", { path: `${outside}/mod.ts` }, lease),
      "PERMISSION_DENIED",
    );
  });
  await t.step("nested Workers", async () => {
    expectError(await runHostile(server, "nested-worker", {}), "PERMISSION_DENIED", /Worker/);
  });
  await t.step("Deno.Command", async () => {
    expectError(await runHostile(server, "run-command", {}), "PERMISSION_DENIED");
  });
  await t.step("Deno.env.get", async () => {
    expectError(await runHostile(server, "env-read", {}), "PERMISSION_DENIED");
  });
  await t.step("Deno.dlopen", async () => {
    expectError(await runHostile(server, "ffi", {}), "PERMISSION_DENIED");
  });
  await t.step("Deno.connect and fetch to a host not in the lease", async () => {
    const ac = new AbortController();
    const srv = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
      () => new Response("hi"),
    );
    const port = srv.addr.port;
    const netLease = { "net.fetch": ["https://example.com/**"] };
    expectError(await runHostile(server, "connect-out", { port }, netLease), "PERMISSION_DENIED");
    expectError(
      await runHostile(server, "fetch-out", { url: `http://127.0.0.1:${port}/` }, netLease),
      "PERMISSION_DENIED",
    );
    ac.abort();
    await srv.finished;
  });
  await t.step("while (true) {} is killed by cancel", async () => {
    const out = await runHostile(server, "spin", {}, {}, {}, async (alice, jobId) => {
      await alice.next((e) => e.job_id === jobId && e.payload?.body?.phase === "spinning", 15_000);
      alice.send("job.cancel", { reason: "stop spinning" }, { job_id: jobId });
    });
    equal(out.terminal.payload.code, "CANCELLED");
  });
  await t.step("while (true) {} is killed by max_runtime_sec", async () => {
    const out = await runHostile(server, "spin", {}, {}, { max_runtime_sec: 2 });
    equal(out.terminal.payload.code, "TIMEOUT");
    equal(out.terminal.payload.final_status, "timed_out");
  });
  await t.step("while (true) {} with no deadline is killed when its beats stop", async () => {
    expectError(await runHostile(server, "spin", {}), "HEARTBEAT_LOST");
  });
  await t.step("allocating memory without bound ends only that principal's host", async () => {
    const out = await runHostile(server, "memory-bomb", {});
    expectError(out, "INTERNAL_ERROR", /memory|sandbox host/);
    equal(out.terminal.payload.retryable, true);
  });
  await t.step("emitting 1,000,000 events as fast as possible", async () => {
    expectError(await runHostile(server, "event-flood", {}), "INTERNAL_ERROR", /events/);
  });
  await t.step("posting raw events without waiting for credit", async () => {
    expectError(await runHostile(server, "raw-flood", {}), "INTERNAL_ERROR");
  });
  await t.step("one 10 MiB event", async () => {
    expectError(await runHostile(server, "huge-event", {}), "INTERNAL_ERROR", /cap/);
  });
  await t.step("raw messages naming another job's id", async () => {
    expectError(
      await runHostile(server, "forge-other", { other: "job_01OTHERJOB" }),
      "PERMISSION_DENIED",
      /protocol/,
    );
    expectError(
      await runHostile(server, "forge-terminal", { other: "job_01OTHERJOB" }),
      "PERMISSION_DENIED",
      /protocol/,
    );
  });

  await Deno.remove(dir, { recursive: true });
  await Deno.remove(outside, { recursive: true });
});
