/**
 * A damaged store, as operators meet it: `arcp serve` refusing to start on
 * it with one line and exit 1, and `arcp doctor` listing what is wrong
 * without changing anything. Real KV files, real child processes.
 */
import { equal, match, ok } from "assert";
import {
  fileDigest,
  garbleValue,
  logValues,
  overwrite,
  overwriteLog,
  valueHolding,
} from "../../testing/kv_damage.ts";
import { ROOT, startServer, type TestServer } from "../../testing/server.ts";
import { WsClient } from "../../testing/ws_client.ts";
import { runCli, spawnCli } from "./_cli.ts";

/** Events of the fixture's ticker. */
const TICKS = 2000;

interface Fixture {
  dir: string;
  kvPath: string;
  sessionId: string;
  jobId: string;
}

/** Runs a ticker on a server, ending with the session detached and every job ended. */
async function runTicker(server: TestServer): Promise<{ sessionId: string; jobId: string }> {
  const c = new WsClient(server.url);
  equal((await c.hello("alice-token")).type, "session.welcome");
  const acc = await c.submit({ agent: "ticker", input: { count: TICKS, interval_ms: 0 } });
  equal((await c.untilTerminal(acc.job_id!, 60_000)).at(-1)!.type, "job.result");
  await c.close();
  return { sessionId: c.sessionId, jobId: acc.job_id! };
}

/** A KV file a runtime wrote (one session, one ticker) and closed cleanly. */
async function writtenStore(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_doctor_" });
  const kvPath = `${dir}/arcp.kv`;
  const server = await startServer({ kvPath });
  try {
    return { dir, kvPath, ...await runTicker(server) };
  } finally {
    await server.close();
  }
}

/** Overwrites 64 KiB of the fixture's session log, from a page holding its middle. */
async function overwriteMiddleOfLog(f: Fixture): Promise<void> {
  await overwriteLog(f.kvPath, ["v1", "slog", f.sessionId], TICKS / 2);
}

function serveArgs(kvPath: string): string[] {
  return ["serve", "--port", "0", "--kv", kvPath, "--agents", `${ROOT}/agents`, "--token", "t=a"];
}

/**
 * Runs `arcp serve` until it exits or says it is listening (then stops it):
 * a start that should have been refused fails the test instead of hanging it.
 */
async function serveOutcome(
  args: string[],
): Promise<{ listening: boolean; code: number; stderr: string }> {
  const run = spawnCli(args, {});
  const listening = await run.waitFor(/listening on/).then(() => true, () => false);
  if (listening) run.kill("SIGKILL");
  const { code, stderr } = await run.done();
  return { listening, code, stderr };
}

/** The one line a refused start prints, checked: the file, what is wrong, where to look next. */
function assertRefusal(
  outcome: { listening: boolean; code: number; stderr: string },
  kvPath: string,
  problem: RegExp,
): void {
  ok(!outcome.listening, "the runtime started on a damaged store");
  equal(outcome.code, 1, outcome.stderr);
  const lines = outcome.stderr.trim().split("\n");
  equal(lines.length, 1, `not one line:\n${outcome.stderr}`);
  ok(lines[0].startsWith(`arcp serve: KV store ${kvPath} `), lines[0]);
  match(lines[0], problem);
  match(lines[0], /arcp doctor --kv/);
}

Deno.test("arcp serve on a KV file that is garbage throughout exits 1 with one line naming the file and the problem", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_doctor_" });
  const kvPath = `${dir}/arcp.kv`;
  try {
    await Deno.writeFile(kvPath, new Uint8Array(0));
    await overwrite(kvPath, 0, 1024 * 1024);
    assertRefusal(
      await serveOutcome(serveArgs(kvPath)),
      kvPath,
      /cannot be read: file is not a database/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("arcp serve on a store with 64 KiB overwritten mid-file exits 1 with one line; --skip-store-check starts anyway", async () => {
  const f = await writtenStore();
  try {
    await overwriteMiddleOfLog(f);
    assertRefusal(await serveOutcome(serveArgs(f.kvPath)), f.kvPath, /is damaged: .*page \d+/);
    const skipped = await serveOutcome([...serveArgs(f.kvPath), "--skip-store-check"]);
    ok(skipped.listening, skipped.stderr);
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("arcp doctor finds nothing wrong with a store a runtime wrote, while it runs and after it closed, and changes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_doctor_" });
  const kvPath = `${dir}/arcp.kv`;
  try {
    const server = await startServer({ kvPath });
    try {
      await runTicker(server);
      // Beside the runtime, on a store with its write-ahead log in use.
      const live = await runCli(["doctor", "--kv", kvPath], {});
      equal(live.code, 0, live.stdout + live.stderr);
    } finally {
      await server.close();
    }
    const before = await fileDigest(kvPath);
    const run = await runCli(["doctor"], { ARCP_KV: kvPath });
    equal(run.code, 0, run.stdout + run.stderr);
    match(
      run.stdout,
      new RegExp(`^arcp doctor: ${kvPath}: no damage found \\([\\d,]+ entries read`),
    );
    equal(await fileDigest(kvPath), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("arcp doctor on a store with 64 KiB overwritten lists the unreadable stretch and the log's missing seqs, exits 1, and changes nothing", async () => {
  const f = await writtenStore();
  try {
    await overwriteMiddleOfLog(f);
    const before = await fileDigest(f.kvPath);
    const run = await runCli(["doctor", "--kv", f.kvPath], {});
    equal(run.code, 1, run.stdout + run.stderr);
    const lines = run.stdout.trim().split("\n");
    equal(lines[0], `arcp doctor: ${f.kvPath}: damaged`);
    match(lines.at(-1)!, /^\d+ problems; [\d,]+ entries read$/);
    ok(lines.some((l) => l.startsWith("  (sqlite)  ")), run.stdout);
    const log = `["v1","slog","${f.sessionId}"`;
    // Whether readable entries follow the stretch depends on where SQLite put the log's pages.
    ok(
      lines.some((l) =>
        l.includes(log) &&
        /unreadable entries (between these keys|from here to the end)$/.test(l)
      ),
      run.stdout,
    );
    ok(
      lines.some((l) => l.startsWith(`  ${log}]  entries `) && l.endsWith(" missing")),
      run.stdout,
    );
    equal(await fileDigest(f.kvPath), before);
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("arcp doctor names a value that does not decode, one that is not its record, a split value missing parts and an index entry naming no job", async () => {
  const f = await writtenStore();
  try {
    // Entries appended in one commit share a value: a value in the middle of the log is
    // garbled, and every entry it held is a hole between the entries around it.
    const garbled = valueHolding(logValues(f.kvPath, ["v1", "slog", f.sessionId]), 100);
    const kv = await Deno.openKv(f.kvPath);
    await kv.set(["v1", "job", "job_bad"], { job_id: "job_bad", status: "bogus" });
    await kv.set(["v1", "plive", "alice", 1, "job_gone"], {
      session_id: f.sessionId,
      agent: "echo",
    });
    await kv.set(["v1", "slog", f.sessionId, TICKS + 50], { parts: 3 });
    await kv.set(["v1", "slog", f.sessionId, TICKS + 50, 0], "{");
    kv.close();
    garbleValue(f.kvPath, ["v1", "slog", f.sessionId, garbled.last]);
    const run = await runCli(["doctor", "--kv", f.kvPath], {});
    equal(run.code, 1, run.stdout + run.stderr);
    const has = (where: string, problem: RegExp) =>
      ok(
        run.stdout.split("\n").some((l) => l.startsWith(`  ${where}  `) && problem.test(l)),
        `no "${where} ${problem}" in:\n${run.stdout}`,
      );
    const log = `["v1","slog","${f.sessionId}"`;
    has(`${log},${garbled.last}]`, /undecodable value/);
    has(`${log},${TICKS + 50}]`, /has 1 of its 3 parts/);
    // The entry that does not decode leaves a hole in the log, too.
    const lost = garbled.first === garbled.last
      ? `entry ${garbled.first}`
      : `entries ${garbled.first}–${garbled.last}`;
    has(`${log}]`, new RegExp(` {2}${lost} missing$`));
    has(`["v1","job","job_bad"]`, /not a job record/);
    has(`["v1","plive","alice",1,"job_gone"]`, /naming job job_gone, which has no record/);
    equal(run.stdout.trim().split("\n").length, 1 + 5 + 1, run.stdout);
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("arcp doctor with no store at the path exits 2 and says so", async () => {
  const run = await runCli(["doctor", "--kv", "/nonexistent/arcp.kv"], {});
  equal(run.code, 2);
  equal(run.stderr.trim(), "arcp doctor: no KV store at /nonexistent/arcp.kv");
});

const haveSqlite3 = await new Deno.Command("sqlite3", {
  args: ["-version"],
  stdout: "null",
  stderr: "null",
}).output().then((o) => o.success, () => false);

Deno.test({
  name:
    "a backup taken with sqlite3 .backup while the runtime writes is sound, and a runtime started on it resumes the session gap-free",
  ignore: !haveSqlite3,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "arcp_backup_" });
    const kvPath = `${dir}/arcp.kv`;
    const backup = `${dir}/restore/arcp.kv`;
    await Deno.mkdir(`${dir}/restore`);
    try {
      const server = await startServer({ kvPath });
      let sessionId: string, resumeToken: string, jobId: string;
      try {
        const c = new WsClient(server.url);
        const w = await c.hello("alice-token");
        [sessionId, resumeToken] = [c.sessionId, w.payload.resume_token];
        const acc = await c.submit({ agent: "ticker", input: { count: 3000, interval_ms: 1 } });
        jobId = acc.job_id!;
        await c.next((e) => e.job_id === jobId && e.event_seq! >= 100, 30_000, "100 ticks");
        // The README's online backup, in the middle of the job.
        const out = await new Deno.Command("sqlite3", { args: [kvPath, `.backup ${backup}`] })
          .output();
        equal(out.code, 0, new TextDecoder().decode(out.stderr));
        await c.untilTerminal(jobId, 60_000);
        await c.close();
      } finally {
        await server.close();
      }
      const check = await runCli(["doctor", "--kv", backup], {});
      equal(check.code, 0, check.stdout + check.stderr);
      // The restored store: the job was running when the backup was taken, so it ends
      // INTERNAL_ERROR at this start, and the session replays whole.
      const restored = await startServer({ kvPath: backup });
      try {
        const c = new WsClient(restored.url);
        const w = await c.hello("alice-token", undefined, {
          session_id: sessionId,
          resume_token: resumeToken,
          last_event_seq: 0,
        });
        equal(w.type, "session.welcome", JSON.stringify(w.payload));
        const envs = await c.untilTerminal(jobId, 60_000);
        const seqs = envs.map((e) => e.event_seq);
        ok(seqs.every((s, i) => s === i + 1), "not gap-free from 1");
        ok(envs.length > 100, `only ${envs.length} envelopes in the backup`);
        equal(envs.at(-1)!.type, "job.error");
        equal(envs.at(-1)!.payload.code, "INTERNAL_ERROR");
        await c.close();
      } finally {
        await restored.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
