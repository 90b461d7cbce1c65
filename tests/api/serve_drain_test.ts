/**
 * Drain on a real `arcp serve` process: SIGTERM refuses new submits with a
 * retryable error and turns `/readyz` 503; a job still running at
 * `--drain-sec` ends INTERNAL_ERROR and its session receives that terminal
 * before the process exits 0. A second signal stops the drain at once.
 */
import { equal, ok } from "assert";
import { type ChildServer, startChildServer } from "../../testing/server.ts";
import { connect, type WsClient } from "../../testing/ws_client.ts";
import { call, running } from "./_api.ts";

function httpOf(child: ChildServer): string {
  return child.url.replace(/^ws/, "http").replace(/\/arcp$/, "");
}

/** Waits until `/readyz` answers 503: the signal reached the process and the drain began. */
async function untilDraining(base: string): Promise<Response> {
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`${base}/readyz`);
    if (res.status === 503) return res;
    await res.body?.cancel();
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("the runtime never reported draining");
}

async function withChild(
  args: string[],
  run: (child: ChildServer, c: WsClient) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_drain_" });
  const child = await startChildServer(`${dir}/arcp.kv`, ["--admin", "bob", ...args]);
  try {
    const c = await connect(child.url, "alice-token");
    try {
      await run(child, c);
    } finally {
      await c.close();
    }
  } finally {
    await child.stop("SIGKILL").catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("SIGTERM drains arcp serve: a submit is refused (retryable), /readyz is 503, a sleeper left at the deadline ends INTERNAL_ERROR before exit 0", async () => {
  await withChild(["--drain-sec", "2"], async (child, c) => {
    const base = httpOf(child);
    const sleeper = await c.submit({ agent: "sleeper", input: { ms: 60_000 } });
    await running(c, sleeper.job_id!);
    child.process.kill("SIGTERM");
    const ready = await untilDraining(base);
    equal((await ready.json()).reasons.includes("draining"), true);
    const drain = await call(base, "/v1/runtime", "bob-token");
    equal(drain.body.drain.state, "draining");

    const refused = await c.submit({ agent: "echo", input: "during drain" });
    equal(refused.type, "job.error");
    equal(refused.payload.code, "INTERNAL_ERROR");
    equal(refused.payload.retryable, true);
    equal(refused.payload.details.cap, "draining");

    // The terminal arrives on the session before the socket closes.
    const end = (await c.untilTerminal(sleeper.job_id!, 30_000)).at(-1)!;
    equal(end.type, "job.error");
    equal(end.payload.code, "INTERNAL_ERROR");
    equal(end.payload.retryable, true);
    equal(end.payload.details.cap, "drain_deadline");
    const bye = await c.next((e) => e.type === "session.bye", 10_000, "session.bye");
    ok(bye.payload.reason);
    const status = await child.process.status;
    equal(status.code, 0, child.output());
    ok(/draining/.test(child.output()));
  });
});

Deno.test("POST /v1/runtime/drain on arcp serve ends the process once drained; a second SIGTERM stops a drain at once", async () => {
  // A drain with nothing running finishes at once and the process exits 0.
  await withChild([], async (child) => {
    const base = httpOf(child);
    const drain = await call(base, "/v1/runtime/drain", "bob-token", { method: "POST", body: {} });
    equal(drain.status, 202);
    equal((await child.process.status).code, 0, child.output());
  });
  // A long drain cut short: the job still ends durably, its session told, exit 0.
  await withChild(["--drain-sec", "600"], async (child, c) => {
    const sleeper = await c.submit({ agent: "sleeper", input: { ms: 60_000 } });
    await running(c, sleeper.job_id!);
    child.process.kill("SIGTERM");
    await untilDraining(httpOf(child));
    child.process.kill("SIGTERM");
    const end = (await c.untilTerminal(sleeper.job_id!, 30_000)).at(-1)!;
    equal(end.payload.code, "INTERNAL_ERROR");
    equal(end.payload.details.cap, "drain_deadline");
    equal((await child.process.status).code, 0, child.output());
    ok(/stopping now/.test(child.output()));
  });
});
