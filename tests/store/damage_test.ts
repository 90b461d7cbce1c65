/**
 * Storage damage found while replaying: a session's resume, or a
 * subscriber's history. The store is a real KV file holding a long event
 * log, damaged on disk between two runs of the runtime; the second run
 * skips the start check (which would refuse the file, see
 * tests/cli/doctor_test.ts), as a store damaged after start would be read.
 * Whatever the damage, the replay ends in a `session.error` naming storage
 * and a close: never a stall, never a half-replay left open. Entries
 * appended in one commit share a value, so damage to an entry is damage to
 * the value holding it: the tests find where the values are before damaging
 * them.
 */
import { deepEqual, equal, match, ok } from "assert";
import { deleteRows, logValues, overwriteLog } from "../../testing/kv_damage.ts";
import { startServer, type TestServer } from "../../testing/server.ts";
import { type Env, resume, WsClient } from "../../testing/ws_client.ts";

/** Events the ticker emits: a log of a few MB, many pages long. */
const TICKS = 5000;

/** Long enough that only a stall, never a slow machine, runs into it. */
const STALL_MS = 60_000;

interface Fixture {
  dir: string;
  kvPath: string;
  sessionId: string;
  resumeToken: string;
  jobId: string;
  /** The session's last seq: the ticker's terminal. */
  lastSeq: number;
}

/** A KV file holding one session that ran one ticker of {@linkcode TICKS} events to its end. */
async function tickerStore(): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_damage_" });
  const kvPath = `${dir}/arcp.kv`;
  const server = await startServer({ kvPath });
  try {
    const c = new WsClient(server.url);
    const w = await c.hello("alice-token");
    const acc = await c.submit({ agent: "ticker", input: { count: TICKS, interval_ms: 0 } });
    const envs = await c.untilTerminal(acc.job_id!, STALL_MS);
    equal(envs.at(-1)!.type, "job.result");
    await c.close();
    return {
      dir,
      kvPath,
      sessionId: c.sessionId,
      resumeToken: w.payload.resume_token,
      jobId: acc.job_id!,
      lastSeq: envs.at(-1)!.event_seq!,
    };
  } finally {
    // A clean close checkpoints the WAL: every page is in the file when it is damaged.
    await server.close();
  }
}

/** The runtime again on the damaged file, without the start check. */
function restart(f: Fixture): Promise<TestServer> {
  return startServer({ kvPath: f.kvPath, storeCheck: false });
}

/**
 * Everything seq-bearing until the first `session.error`, which is returned
 * with them; a replay that stops without one fails after {@linkcode STALL_MS}.
 */
async function untilSessionError(c: WsClient): Promise<{ envs: Env[]; error: Env }> {
  const envs: Env[] = [];
  while (true) {
    const e = await c.next(
      (x) => x.event_seq !== undefined || x.type === "session.error",
      STALL_MS,
      "the replay or a session.error",
    );
    if (e.type === "session.error") return { envs, error: e };
    envs.push(e);
  }
}

/** A resume of the fixture's session from `lastSeen`, welcomed (the fixture keeps the rotated token). */
async function resumeFixture(server: TestServer, f: Fixture, lastSeen: number): Promise<WsClient> {
  const c = await resume(server.url, f, "alice-token", lastSeen);
  f.resumeToken = c.resumeToken;
  return c;
}

/** The seqs of a list, which must run `from`, `from + 1`, … */
function assertRun(envs: Env[], from: number): void {
  const seqs = envs.map((e) => e.event_seq!);
  deepEqual(seqs, seqs.map((_, i) => from + i), `not gap-free from ${from}`);
}

/** A storage `session.error` as the profile has it: INTERNAL_ERROR, retryable, naming storage. */
function assertStorageError(error: Env, kind: string, what: RegExp): void {
  equal(error.payload.code, "INTERNAL_ERROR", JSON.stringify(error.payload));
  equal(error.payload.retryable, true);
  equal(error.payload.details?.storage, kind, JSON.stringify(error.payload));
  match(error.payload.message, /^storage: /);
  match(error.payload.message, what);
}

Deno.test("a resume over a session log with up to 64 KiB overwritten in its middle: a gap-free prefix, then session.error INTERNAL_ERROR naming storage and close 1011", async () => {
  const f = await tickerStore();
  const log = ["v1", "slog", f.sessionId];
  // The tail stays readable: a resume reads it for the session's last seq before it replays.
  // Values only: the resume's own writes may split a leaf beside the log's.
  await overwriteLog(f.kvPath, log, Math.floor(f.lastSeq / 2), { to: f.lastSeq - 1, values: true });
  const server = await restart(f);
  try {
    const c = await resumeFixture(server, f, 0);
    const { envs, error } = await untilSessionError(c);
    assertStorageError(error, "unreadable", /session log/);
    equal(error.session_id, f.sessionId);
    // What came first is the log's start, in order, and stopped short of the damage.
    assertRun(envs, 1);
    ok(envs.length < f.lastSeq, `the whole log came through: ${envs.length}`);
    equal(await c.closed(STALL_MS), 1011);
    ok(c.inbox.every((e) => e.event_seq === undefined), "envelopes after the error");
  } finally {
    await server.close(true);
  }
});

Deno.test("a resume over a session log that lost rows ends in session.error naming the missing seqs, whether they are inside the log or at its end", async () => {
  const f = await tickerStore();
  const log = ["v1", "slog", f.sessionId];
  const values = logValues(f.kvPath, log);
  // The values holding seqs 2000–2099, and the last 10 seqs: the seqs lost are all theirs.
  const hole = values.filter((v) => v.last >= 2000 && v.first <= 2099);
  const [from, to] = [hole[0].first, hole.at(-1)!.last];
  const end = values.filter((v) => v.last >= f.lastSeq - 9);
  const endFrom = end[0].first;
  ok(to < endFrom, "the two stretches touch");
  // Rows gone without a trace, as a b-tree that lost a leaf would show them.
  equal(deleteRows(f.kvPath, [...log, from], [...log, to + 1]), hole.length);
  equal(deleteRows(f.kvPath, [...log, endFrom], [...log, f.lastSeq + 1]), end.length);
  const server = await restart(f);
  try {
    const before = from - 500;
    const inside = await resumeFixture(server, f, before);
    const first = await untilSessionError(inside);
    assertStorageError(first.error, "missing", new RegExp(`seqs ${from}–${to}`));
    deepEqual(first.error.payload.details, { storage: "missing", from, to });
    assertRun(first.envs, before + 1);
    equal(first.envs.at(-1)!.event_seq, from - 1);
    equal(await inside.closed(STALL_MS), 1011);

    // The session is still there: a resume past the hole reaches the lost end.
    const tail = await resumeFixture(server, f, to);
    const second = await untilSessionError(tail);
    assertStorageError(second.error, "missing", new RegExp(`seqs ${endFrom}–${f.lastSeq}`));
    assertRun(second.envs, to + 1);
    equal(second.envs.at(-1)!.event_seq, endFrom - 1);
    equal(await tail.closed(STALL_MS), 1011);
  } finally {
    await server.close(true);
  }
});

Deno.test("a subscriber's history replay over 64 KiB overwritten in the job's history: session.error INTERNAL_ERROR naming storage and the job, and close 1011", async () => {
  const f = await tickerStore();
  const history = ["v1", "jlog", f.jobId];
  // Values only, the tail spared: a hello after the restart files its session beside the
  // history, and a write that splits a leaf reads the leaves beside it ('malformed' at hello).
  await overwriteLog(f.kvPath, history, Math.floor(TICKS / 2), { to: TICKS - 1, values: true });
  const server = await restart(f);
  try {
    const c = new WsClient(server.url);
    const welcome = await c.hello("alice-token");
    equal(welcome.type, "session.welcome", JSON.stringify(welcome.payload));
    c.send("job.subscribe", { job_id: f.jobId, history: true });
    const subscribed = await c.next((e) => e.type === "job.subscribed", STALL_MS);
    equal(subscribed.payload.replayed, true);
    const { envs, error } = await untilSessionError(c);
    assertStorageError(error, "unreadable", new RegExp(`history of job ${f.jobId}`));
    assertRun(envs, 1);
    ok(envs.every((e) => e.job_id === f.jobId && e.type === "job.event"));
    ok(envs.length < TICKS, `the whole history came through: ${envs.length}`);
    equal(await c.closed(STALL_MS), 1011);
  } finally {
    await server.close(true);
  }
});
