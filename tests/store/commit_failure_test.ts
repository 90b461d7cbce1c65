import { deepEqual, equal, match, ok } from "assert";
import { listTexts } from "../../src/store/large_value.ts";
import { type ChildServer, startChildServer, startServer } from "../../testing/server.ts";
import { connect, type Env, traceId, WsClient } from "../../testing/ws_client.ts";
import { CaptureLogger, sample, scrape } from "../operations/_observe.ts";

/**
 * A KV commit that fails because the disk is full, for real: the runtime
 * runs as a child process with its KV file on a tiny tmpfs that the test
 * fills up. Mounting needs root; without it the test is skipped.
 */

/** Runs a command, returning its exit code and stderr. */
async function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr).trim() };
  } catch (err) {
    return { code: -1, stderr: String(err) };
  }
}

/** Mounts a tmpfs of `kib` KiB at `dir`. */
async function mountTmpfs(dir: string, kib: number): Promise<string | undefined> {
  const r = await run("mount", ["-t", "tmpfs", "-o", `size=${kib}k`, "tmpfs", dir]);
  return r.code === 0 ? undefined : r.stderr || `mount exited with ${r.code}`;
}

/** Why a tmpfs cannot be mounted here, or undefined when it can (probed at load time). */
async function mountProblem(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return `tmpfs mounts need Linux, this is ${Deno.build.os}`;
  let uid: number | null = null;
  try {
    uid = Deno.uid();
  } catch {
    // No --allow-sys: let the mount probe decide.
  }
  if (uid !== null && uid !== 0) return `mounting a tmpfs needs root, running as uid ${uid}`;
  const dir = await Deno.makeTempDir({ prefix: "arcp_mount_probe_" });
  try {
    const problem = await mountTmpfs(dir, 64);
    if (problem) return `mount -t tmpfs is not permitted: ${problem}`;
    await run("umount", [dir]);
    return undefined;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const SKIP = await mountProblem();
if (SKIP) console.warn(`skipping the full-disk KV test: ${SKIP}`);

/** Fills the filesystem holding `path` until it reports ENOSPC. */
async function fill(path: string): Promise<number> {
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  const block = new Uint8Array(4096);
  let written = 0;
  try {
    while (true) written += await file.write(block);
  } catch (err) {
    ok(/No space left/i.test(String(err)), `filling stopped for another reason: ${err}`);
  } finally {
    file.close();
  }
  return written;
}

/** Waits until `pred` holds for something the client has seen. */
async function seenSoon(c: WsClient, pred: (e: Env) => boolean, ms: number): Promise<Env> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const hit = c.seen.find(pred);
    if (hit) return hit;
    if (c.closeCode !== undefined) throw new Error(`socket closed (${c.closeCode})`);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(
    `timed out; seen: ${
      JSON.stringify(
        c.seen.filter((e) => e.type !== "job.event").map((
          e,
        ) => [e.type, e.trace_id, e.event_seq, e.payload.code]),
      )
    }`,
  );
}

/** The integers from `a` to `b`, inclusive. */
function range(a: number, b: number): number[] {
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

/** Sends a ping and waits for its pong. */
async function pingPong(c: WsClient): Promise<void> {
  const nonce = `n${crypto.randomUUID()}`;
  c.send("session.ping", { nonce, sent_at: new Date().toISOString() });
  await c.next((e) => e.type === "session.pong" && e.payload.ping_nonce === nonce, 5000, "pong");
}

Deno.test({
  name:
    `a full disk: INTERNAL_ERROR, nothing uncommitted is delivered, no seq gap, recovery once freed${
      SKIP ? ` (skipped: ${SKIP})` : ""
    }`,
  ignore: SKIP !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "arcp_enospc_" });
    const problem = await mountTmpfs(dir, 16 * 1024);
    ok(problem === undefined, `mount failed: ${problem}`);
    const kvPath = `${dir}/arcp.kv`;
    const filler = `${dir}/filler`;
    let child: ChildServer | undefined;
    try {
      child = await startChildServer(kvPath);
      const c = await connect(child.url);
      const ticker = await c.submit({ agent: "ticker", input: { count: 400, interval_ms: 10 } });
      equal(ticker.type, "job.accepted");
      const jobId = ticker.job_id!;
      await c.next((e) => e.job_id === jobId && e.payload?.body?.current === 5, 10_000, "tick 5");

      ok(await fill(filler) > 0, "the filler wrote nothing: the tmpfs was already full");
      const fault = await seenSoon(
        c,
        (e) => e.type === "session.error" && e.payload.code === "INTERNAL_ERROR",
        15_000,
      );
      equal(fault.payload.retryable, true);
      ok(fault.payload.message.length > 0);

      // The runtime is alive and answering while the disk is full.
      await pingPong(c);
      // A submit while the disk is full: SQLite may still fit a commit into
      // WAL space it already has, so it is either accepted (and then runs to
      // its end) or refused with INTERNAL_ERROR naming storage (a
      // session.error, since a job.error could not be logged); never
      // accepted and lost.
      const trace = traceId();
      c.send("job.submit", { agent: "echo", input: "while full" }, { trace_id: trace });
      await pingPong(c);

      // Free the space: what was held back is committed and delivered, in order.
      await Deno.remove(filler);
      const end = await seenSoon(
        c,
        (e) => e.job_id === jobId && (e.type === "job.result" || e.type === "job.error"),
        30_000,
      );
      equal(end.type, "job.result");
      deepEqual(end.payload.result, { ticks: 400 });
      const ticks = c.seen.filter((e) => e.job_id === jobId && e.payload?.kind === "progress");
      deepEqual(ticks.map((e) => e.payload.body.current), range(1, 400));
      equal(c.seen.filter((e) => e.job_id === jobId && e.type === "job.result").length, 1);
      const answer = await seenSoon(
        c,
        (e) =>
          (e.type === "job.accepted" || e.type === "job.error" || e.type === "session.error") &&
          e.trace_id === trace,
        15_000,
      );
      if (answer.type === "job.accepted") {
        const done = await seenSoon(
          c,
          (e) => e.type === "job.result" && e.job_id === answer.job_id,
          15_000,
        );
        equal(done.payload.result.echo, "while full");
      } else {
        equal(answer.payload.code, "INTERNAL_ERROR");
        equal(answer.payload.retryable, true);
        equal(answer.payload.details?.storage, "failing");
      }
      // One report per stall episode step, not one per held-back envelope.
      const faults = c.seen.filter((e) => e.type === "session.error");
      ok(faults.length < 40, `${faults.length} session.errors for one full-disk episode`);
      ok(faults.every((e) => e.payload.code === "INTERNAL_ERROR" && e.payload.retryable));

      // New work runs normally.
      const fresh = await c.submit({ agent: "echo", input: "after" });
      equal(fresh.type, "job.accepted");
      const out = await c.untilTerminal(fresh.job_id!);
      equal(out.at(-1)!.type, "job.result");
      equal(out.at(-1)!.payload.result.echo, "after");
      await pingPong(c);

      // Every seq the client got is gap-free from 1 ...
      const delivered = c.seen.filter((e) => e.event_seq !== undefined);
      deepEqual(delivered.map((e) => e.event_seq), range(1, delivered.length));
      const sessionId = c.sessionId;
      await c.close();
      // ... the process never crashed and shuts down cleanly ...
      const status = await child.stop("SIGTERM");
      const output = child.output();
      child = undefined;
      equal(status.success, true, output);
      ok(!/uncaught|panicked/i.test(output), output);

      // ... and every delivered envelope is in the KV log, byte for byte.
      const kv = await Deno.openKv(kvPath);
      try {
        const log = new Map<number, string>();
        for await (const [seq, text] of listTexts(kv, ["v1", "slog", sessionId])) {
          log.set(seq, text);
        }
        for (const e of delivered) {
          const logged = log.get(e.event_seq!);
          ok(logged !== undefined, `delivered seq ${e.event_seq} is not in the KV log`);
          deepEqual(JSON.parse(logged), e);
        }
      } finally {
        kv.close();
      }
    } finally {
      await child?.stop("SIGKILL");
      await run("umount", ["-l", dir]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

/** A `session.error` refusing a request because storage is failing (not the held-events notice). */
function isStorageRefusal(e: Env): boolean {
  return e.type === "session.error" && e.payload.details?.storage === "failing" &&
    /needs a write/.test(e.payload.message);
}

Deno.test({
  name:
    `while the disk is full, requests that need a write fail fast, reads answer, health and readiness say so${
      SKIP ? ` (skipped: ${SKIP})` : ""
    }`,
  ignore: SKIP !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "arcp_enospc_" });
    const problem = await mountTmpfs(dir, 16 * 1024);
    ok(problem === undefined, `mount failed: ${problem}`);
    const filler = `${dir}/filler`;
    const log = new CaptureLogger();
    const server = await startServer({ kvPath: `${dir}/arcp.kv`, logger: log });
    try {
      const a = await connect(server.url);
      const ticker = await a.submit({ agent: "ticker", input: { count: 300, interval_ms: 10 } });
      equal(ticker.type, "job.accepted");
      const jobId = ticker.job_id!;
      await a.next((e) => e.job_id === jobId && e.payload?.body?.current === 5, 10_000, "tick 5");

      ok(await fill(filler) > 0, "the filler wrote nothing: the tmpfs was already full");
      // The ticker's session is told its events are held back, naming storage.
      const held = await seenSoon(
        a,
        (e) => e.type === "session.error" && e.payload.details?.storage === "failing",
        15_000,
      );
      equal(held.payload.code, "INTERNAL_ERROR");
      equal(held.payload.retryable, true);

      // Liveness stays 200 and says storage fails; readiness is 503.
      const health = await fetch(`${server.http}/healthz`);
      equal(health.status, 200);
      const body = await health.json();
      equal(body.ok, false);
      equal(body.storage.ok, false);
      match(body.storage.error, /full|space/i);
      const ready = await fetch(`${server.http}/readyz`);
      equal(ready.status, 503);
      deepEqual((await ready.json()).reasons, ["storage_failing"]);

      // A new hello is answered while the disk is still full, with a
      // retryable INTERNAL_ERROR naming storage, and the socket closes.
      const b = new WsClient(server.url);
      const refused = await b.hello("bob-token");
      ok(isStorageRefusal(refused), JSON.stringify(refused));
      equal(refused.payload.code, "INTERNAL_ERROR");
      equal(refused.payload.retryable, true);
      ok((await b.closed()) !== undefined, "the refused hello's socket stayed open");

      // A read answers: list_jobs shows the running ticker, also behind an
      // ack (freeing acknowledged entries is a write that must not hold it).
      const lastSeq = Math.max(...a.seen.map((e) => e.event_seq ?? 0));
      a.send("session.ack", { last_processed_seq: lastSeq });
      const list = a.send("session.list_jobs", {});
      const jobs = await a.next(
        (e) => e.type === "session.jobs" && e.payload.request_id === list.id,
        10_000,
        "session.jobs",
      );
      deepEqual(jobs.payload.jobs.map((j: { job_id: string }) => j.job_id), [jobId]);
      await pingPong(a);

      // A submit and a subscribe need writes: each is refused at once.
      const trace = traceId();
      a.send("job.submit", { agent: "echo", input: "while full" }, { trace_id: trace });
      const noJob = await a.next(
        (e) => isStorageRefusal(e) && e.trace_id === trace,
        10_000,
        "submit refusal",
      );
      equal(noJob.payload.retryable, true);
      a.send("job.subscribe", { job_id: jobId });
      await a.next(
        (e) => isStorageRefusal(e) && e.trace_id === undefined,
        10_000,
        "subscribe refusal",
      );
      const failing = await scrape(server.http);
      equal(sample(failing, "arcp_storage_failing"), 1);
      equal(sample(failing, "arcp_storage_stalls_total"), 1);

      // Space frees: what was held is delivered in order and the runtime is ready again.
      await Deno.remove(filler);
      const end = await seenSoon(
        a,
        (e) => e.job_id === jobId && (e.type === "job.result" || e.type === "job.error"),
        30_000,
      );
      equal(end.type, "job.result");
      deepEqual(end.payload.result, { ticks: 300 });
      const ticks = a.seen.filter((e) => e.job_id === jobId && e.payload?.kind === "progress");
      deepEqual(ticks.map((e) => e.payload.body.current), range(1, 300));
      const delivered = a.seen.filter((e) => e.event_seq !== undefined);
      deepEqual(delivered.map((e) => e.event_seq), range(1, delivered.length));
      await log.waitFor((r) => r.message.startsWith("storage recovered"), 15_000);
      equal((await fetch(`${server.http}/readyz`)).status, 200);
      equal(sample(await scrape(server.http), "arcp_storage_failing"), 0);
      const c = await connect(server.url, "bob-token");
      const fresh = await c.submit({ agent: "echo", input: "after" });
      equal(fresh.type, "job.accepted");
      equal((await c.untilTerminal(fresh.job_id!)).at(-1)!.payload.result.echo, "after");
      await c.close();
      await a.close();
      // One line when storage started failing and one when it recovered.
      equal(log.matching((r) => r.message.startsWith("storage failing")).length, 1);
      equal(log.matching((r) => r.message.startsWith("storage recovered")).length, 1);
    } finally {
      await server.close();
      await run("umount", ["-l", dir]);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
