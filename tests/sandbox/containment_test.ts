/**
 * Containment: hostile agents run as real agents, each in its own sandbox
 * process, beside an honest ticker of another principal that must finish
 * correctly, while `/healthz` is polled throughout and must answer every
 * time without a multi-second stall.
 */
import { equal, match, ok } from "assert";
import { ROOT, startServer, type TestServer } from "../../testing/server.ts";
import { connect, type Env, type WsClient } from "../../testing/ws_client.ts";
import { processGone } from "./_process.ts";

const FIXTURES = `${ROOT}/tests/fixtures/containment`;
const MEMORY_MB = 384;

/** Polls `/healthz` every 100 ms until stopped; every answer must come, and none may stall. */
function pollHealth(server: TestServer): { stop(): Promise<number> } {
  let running = true;
  let worst = 0;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const res = await fetch(`${server.http}/healthz`);
      equal(res.status, 200);
      await res.body?.cancel();
      worst = Math.max(worst, performance.now() - started);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return worst;
    },
  };
}

interface Outcome {
  terminal: Env;
  /** ms from submit to the terminal. */
  took: number;
}

/**
 * Runs one hostile job of alice beside bob's honest ticker.
 *
 * @param input the hostile job's input, or a function of alice's session that submits what the
 *   case needs first and returns the input
 * @param after runs with alice's session once the hostile job has ended
 */
async function runCase(
  server: TestServer,
  agent: string,
  input: unknown,
  after?: (alice: WsClient) => Promise<void>,
): Promise<Outcome> {
  const health = pollHealth(server);
  const bob = await connect(server.url, "bob-token");
  const alice = await connect(server.url, "alice-token");
  try {
    const ticker = await bob.submit({ agent: "ticker", input: { count: 30, interval_ms: 20 } });
    equal(ticker.type, "job.accepted", JSON.stringify(ticker.payload));
    const started = Date.now();
    const given = typeof input === "function" ? await input(alice) : input;
    const acc = await alice.submit({ agent, input: given });
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    const terminal = (await alice.untilTerminal(acc.job_id!, 30_000)).at(-1)!;
    const took = Date.now() - started;
    if (after) await after(alice);
    const bobEnd = (await bob.untilTerminal(ticker.job_id!, 30_000)).at(-1)!;
    equal(bobEnd.type, "job.result", `honest ticker: ${JSON.stringify(bobEnd.payload)}`);
    equal(bobEnd.payload.result.ticks, 30);
    return { terminal, took };
  } finally {
    await alice.close();
    await bob.close();
    const worst = await health.stop();
    ok(worst < 2000, `/healthz took ${worst.toFixed(0)} ms while ${agent} ran`);
  }
}

function expectCap(out: Outcome, cap: string, pattern: RegExp): void {
  equal(out.terminal.type, "job.error", JSON.stringify(out.terminal.payload));
  equal(out.terminal.payload.code, "INTERNAL_ERROR", JSON.stringify(out.terminal.payload));
  equal(out.terminal.payload.details?.cap, cap, JSON.stringify(out.terminal.payload));
  match(out.terminal.payload.message, pattern);
}

Deno.test("containment: hostile agents end alone, with specific errors, and the runtime keeps answering", async (t) => {
  await using server = await startServer({
    agentsDir: FIXTURES,
    hostHeapMb: 128,
    memoryMb: MEMORY_MB,
  });

  await t.step("a forged job.result for another job of the same principal on stdout", async () => {
    let victim = "";
    let submitted = 0;
    const out = await runCase(server, "forge-stdout", async (alice: WsClient) => {
      victim = (await alice.submit({ agent: "sleeper", input: { ms: 2500 } })).job_id!;
      submitted = Date.now();
      return { other: victim };
    }, async (alice) => {
      const end = (await alice.untilTerminal(victim, 15_000)).at(-1)!;
      equal(end.type, "job.result", JSON.stringify(end.payload));
      equal(end.payload.result.slept_ms, 2500);
      equal(end.payload.result.forged, undefined);
      ok(Date.now() - submitted >= 2400, "the sleeper ended before its real end");
    });
    equal(out.terminal.type, "job.result", JSON.stringify(out.terminal.payload));
  });

  await t.step("reading stdin yields nothing of another job", async () => {
    const secret = `SECRET-${crypto.randomUUID()}`;
    let other = "";
    const out = await runCase(server, "read-stdin", async (alice: WsClient) => {
      other = (await alice.submit({ agent: "sleeper", input: { ms: 1500, secret } })).job_id!;
      return {};
    }, async (alice) => void await alice.untilTerminal(other, 15_000));
    equal(out.terminal.type, "job.result", JSON.stringify(out.terminal.payload));
    equal(out.terminal.payload.result.text, "");
    ok(!JSON.stringify(out.terminal.payload).includes(secret));
  });

  await t.step("node:worker_threads spinners, nested too, die with their job", async () => {
    const out = await runCase(server, "threads-spin", {});
    equal(out.terminal.type, "job.result", JSON.stringify(out.terminal.payload));
    const pid = out.terminal.payload.result.pid;
    ok(Number.isInteger(pid) && pid !== Deno.pid);
    ok(await processGone(pid, 5_000), `sandbox process ${pid} still runs after its job ended`);
  });

  for (const kind of ["buffer", "wasm"]) {
    await t.step(`a ${kind} memory bomb ends with the memory ceiling`, async () => {
      const out = await runCase(server, "memory-bomb", { kind });
      expectCap(out, "memory", new RegExp(`memory ceiling is ${MEMORY_MB} MiB`));
      equal(out.terminal.payload.retryable, true);
    });
  }

  await t.step("a 50 MiB returned result is refused at the source", async () => {
    const out = await runCase(server, "big-result", { mb: 50 });
    expectCap(out, "result", /inline cap is \d+ bytes.*streamResult/);
    ok(out.took < 10_000, `took ${out.took} ms`);
  });

  await t.step("a 50 MiB result posted raw is refused by the sandbox process", async () => {
    const out = await runCase(server, "big-result", { mb: 50, raw: true });
    expectCap(out, "result", /inline cap is \d+ bytes/);
    ok(out.took < 10_000, `took ${out.took} ms`);
  });

  await t.step("a 30 MiB event is refused by the sandbox process", async () => {
    const out = await runCase(server, "huge-event", { mb: 30 });
    expectCap(out, "event", /event of \d+ bytes; the cap is \d+ bytes/);
  });

  await t.step("a console.log flood ends the job with the output cap", async () => {
    const out = await runCase(server, "console-flood", {});
    expectCap(out, "output", /stdout faster than/);
  });

  await t.step("self.close() ends the job at once with its own error", async () => {
    const out = await runCase(server, "self-close", {});
    equal(out.terminal.payload.code, "INTERNAL_ERROR", JSON.stringify(out.terminal.payload));
    match(out.terminal.payload.message, /closed its worker/);
    ok(out.took < 5_000, `took ${out.took} ms`);
  });

  await t.step("Deno.exit() ends the job at once with its own error", async () => {
    const out = await runCase(server, "deno-exit", {});
    equal(out.terminal.payload.code, "INTERNAL_ERROR", JSON.stringify(out.terminal.payload));
    match(out.terminal.payload.message, /Deno\.exit/);
    ok(out.took < 5_000, `took ${out.took} ms`);
  });
});
