import { deepEqual, equal, ok, rejects } from "assert";
import { StoreDamageError } from "./damage.ts";
import {
  listTextPages,
  listTexts,
  logWrites,
  PART_CHARS,
  SEGMENT_CHARS,
  SEGMENT_ENTRIES,
  TextAssembler,
  textWrites,
} from "./large_value.ts";
import type { JobRecord, SessionRecord } from "./records.ts";
import { Store } from "./store.ts";
import { jobRecord } from "../../testing/job_record.ts";

/** Feeds writes to an assembler as a listing would return them; collects texts and problems. */
function assemble(
  entries: Array<[Deno.KvKey, unknown]>,
): { texts: Array<[number, string]>; problems: StoreDamageError[] } {
  const problems: StoreDamageError[] = [];
  const assembler = new TextAssembler("the log", (e) => problems.push(e));
  const texts: Array<[number, string]> = [];
  for (const [key, value] of entries) {
    texts.push(...assembler.add(key, value));
  }
  assembler.end();
  return { texts, problems };
}

const big = "é".repeat(70_000);
const parts = textWrites(["log", 1], big).map((
  w,
): [Deno.KvKey, unknown] => [w.key.slice(1), w.value]);

Deno.test("whole texts and split ones reassemble in order, with no problem", () => {
  const { texts, problems } = assemble([[[0], "a"], ...parts, [[2], "b"]]);
  deepEqual(texts.map(([n, t]) => [n, t.length]), [[0, 1], [1, 70_000], [2, 1]]);
  equal(texts[1][1], big);
  deepEqual(problems, []);
});

Deno.test("a split text with a part gone, its head gone, or its end gone is a problem naming the entry, and the rest still reads", () => {
  const lostMiddle = assemble([...parts.filter(([k]) => k[1] !== 1), [[2], "b"]]);
  deepEqual(lostMiddle.texts, [[2, "b"]]);
  equal(lostMiddle.problems.length, 1);
  equal(lostMiddle.problems[0].kind, "missing");
  deepEqual(lostMiddle.problems[0].details, { storage: "missing", entry: 1 });

  const lostHead = assemble([...parts.slice(1), [[2], "b"]]);
  deepEqual(lostHead.texts, [[2, "b"]]);
  ok(lostHead.problems.every((p) => /entry 1 of the log has parts but no head/.test(p.message)));

  const lostEnd = assemble(parts.slice(0, -1));
  deepEqual(lostEnd.texts, []);
  equal(lostEnd.problems.length, 1);
  ok(/has 2 of its 3 parts/.test(lostEnd.problems[0].message), lostEnd.problems[0].message);
});

Deno.test("a head that is neither a text nor {parts} is malformed", () => {
  const { texts, problems } = assemble([[[0], { parts: "x" }], [[1], 7], [[2], "ok"]]);
  deepEqual(texts, [[2, "ok"]]);
  deepEqual(problems.map((p) => p.kind), ["malformed", "malformed"]);
});

Deno.test("listTexts stops with StoreDamageError at a split value missing a part, after the entries before it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_lv_" });
  const kv = await Deno.openKv(`${dir}/test.kv`);
  try {
    const op = kv.atomic();
    for (const w of [...textWrites(["log", 0], "a"), ...textWrites(["log", 1], big)]) {
      op.set(w.key, w.value);
    }
    await op.commit();
    await kv.delete(["log", 1, 2]);
    const got: number[] = [];
    await rejects(
      async () => {
        for await (const [n] of listTexts(kv, ["log"], -1, "the test log")) got.push(n);
      },
      (err: unknown) =>
        err instanceof StoreDamageError && err.code === "INTERNAL_ERROR" &&
        /^storage: entry 1 of the test log has 2 of its 3 parts$/.test(err.message),
    );
    deepEqual(got, [0]);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("entries sharing a value come out one by one; a shared value that is not texts, reaches before position 0, or holds an entry twice is malformed", () => {
  const good = assemble([
    [[2], ["a", "b", "c"]],
    ...parts.map(([k, v]): [Deno.KvKey, unknown] => [[3, ...k.slice(1)], v]),
    [[5], ["d", "e"]],
  ]);
  deepEqual(good.texts.map(([n, t]) => [n, t.length]), [
    [0, 1],
    [1, 1],
    [2, 1],
    [3, 70_000],
    [4, 1],
    [5, 1],
  ]);
  deepEqual(good.problems, []);

  const bad = assemble([[[1], []], [[2], ["x", 7]], [[3], ["a", "b", "c", "d", "e"]], [[6], [
    "f",
    "g",
  ]], [[9], ["h", "i", "j", "k"]]]);
  deepEqual(bad.texts, [[5, "f"], [6, "g"], [7, "i"], [8, "j"], [9, "k"]]);
  deepEqual(bad.problems.map((p) => p.kind), ["malformed", "malformed", "malformed", "malformed"]);
  ok(
    /entry 9 of the log holds entry 6, which an earlier value holds/.test(bad.problems[3].message),
  );
});

Deno.test("listTexts stops with StoreDamageError at a shared value that is not texts, after the entries before it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_lv_" });
  const kv = await Deno.openKv(`${dir}/test.kv`);
  try {
    await kv.set(["log", 2], ["a", "b", "c"]);
    await kv.set(["log", 4], ["d", { not: "a text" }]);
    const got: number[] = [];
    await rejects(
      async () => {
        for await (const [n] of listTexts(kv, ["log"], 0, "the test log")) got.push(n);
      },
      (err: unknown) =>
        err instanceof StoreDamageError && err.kind === "malformed" &&
        /entry 4 of the test log is not the texts of the entries sharing its value/.test(
          err.message,
        ),
    );
    deepEqual(got, [1, 2]);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A store on a KV file in a fresh temp dir, removed on dispose. */
async function tempStore(): Promise<{ store: Store } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_lv_" });
  const store = await Store.open({ path: `${dir}/test.kv` });
  return {
    store,
    async [Symbol.asyncDispose]() {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** The texts of a log from `after` on, as `[n, text]`. */
async function read(
  kv: Deno.Kv,
  log: Deno.KvKey,
  after?: number,
): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  for await (const entry of listTexts(kv, log, after)) out.push(entry);
  return out;
}

/** Every value stored under a prefix. */
async function values(kv: Deno.Kv, prefix: Deno.KvKey): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const e of kv.list({ prefix })) out.push(e.value);
  return out;
}

const LOG = ["v1", "slog", "sess_test"];

Deno.test("entries of one log appended in one commit share values and read back in order from any position", async () => {
  await using db = await tempStore();
  const kv = db.store.kv;
  const texts = Array.from({ length: 700 }, (_, i) => `envelope ${i + 1} ${"·".repeat(i % 50)}`);
  await Promise.all(texts.map((t, i) => db.store.write(logWrites(LOG, i + 1, t))));
  const stored = await values(kv, LOG);
  ok(stored.length < texts.length / 100, `${stored.length} values for ${texts.length} entries`);
  for (const v of stored) {
    ok(Array.isArray(v) || typeof v === "string");
    const shared = Array.isArray(v) ? v as string[] : [v as string];
    ok(shared.length <= SEGMENT_ENTRIES);
    ok(shared.reduce((n, t) => n + t.length, 0) <= SEGMENT_CHARS);
  }
  const all = texts.map((t, i): [number, string] => [i + 1, t]);
  deepEqual(await read(kv, LOG), all);
  // Positions inside a shared value, at its ends, and past the end.
  for (const after of [0, 1, 137, 255, 256, 257, 699, 700]) {
    deepEqual(await read(kv, LOG, after), all.slice(after), `after ${after}`);
  }
});

Deno.test("listTextPages gives each stored value's entries as one page, the same entries listTexts gives one by one", async () => {
  await using db = await tempStore();
  const kv = db.store.kv;
  const texts = Array.from({ length: 700 }, (_, i) => `envelope ${i + 1}`);
  await Promise.all(texts.map((t, i) => db.store.write(logWrites(LOG, i + 1, t))));
  const stored = (await values(kv, LOG)).map((v) => Array.isArray(v) ? v.length : 1);
  for (const after of [0, 1, 137, 699, 700]) {
    const pages: Array<Array<[number, string]>> = [];
    for await (const page of listTextPages(kv, LOG, after)) pages.push(page);
    ok(pages.every((page) => page.length > 0), `after ${after}: an empty page`);
    deepEqual(pages.flat(), await read(kv, LOG, after), `after ${after}`);
    // Past the first page (cut at `after`), a page is one stored value.
    const whole = pages.slice(1).map((page) => page.length);
    deepEqual(whole, stored.slice(stored.length - whole.length), `after ${after}`);
  }
});

Deno.test("a large entry is stored in parts, alone, between entries that share values", async () => {
  await using db = await tempStore();
  const kv = db.store.kv;
  const big = "ünïcödé ".repeat(Math.ceil((PART_CHARS * 2.5) / 8));
  const texts = ["a", "b", big, "c", "d"];
  await Promise.all(texts.map((t, i) => db.store.write(logWrites(LOG, i + 1, t))));
  const all = texts.map((t, i): [number, string] => [i + 1, t]);
  deepEqual(await read(kv, LOG), all);
  deepEqual(await read(kv, LOG, 2), all.slice(2));
  deepEqual(await read(kv, LOG, 3), all.slice(3));
  deepEqual(await read(kv, LOG, 4), all.slice(4));
});

Deno.test("interleaved logs and a gap in positions each start a value of their own", async () => {
  await using db = await tempStore();
  const kv = db.store.kv;
  const other = ["v1", "slog", "sess_other"];
  const writes: Array<Promise<void>> = [];
  for (let i = 1; i <= 40; i++) {
    writes.push(db.store.write(logWrites(LOG, i, `mine ${i}`)));
    writes.push(db.store.write(logWrites(other, i, `other ${i}`)));
  }
  // A filler for a position far behind (as when a lost envelope is replaced).
  writes.push(db.store.write(logWrites(LOG, 100, "late")));
  await Promise.all(writes);
  const mine = Array.from({ length: 40 }, (_, i): [number, string] => [i + 1, `mine ${i + 1}`]);
  deepEqual(await read(kv, LOG), [...mine, [100, "late"]]);
  deepEqual(
    await read(kv, other),
    Array.from({ length: 40 }, (_, i): [number, string] => [i + 1, `other ${i + 1}`]),
  );
});

Deno.test("freeing a session log removes exactly the entries acknowledged, cutting shared values", async () => {
  await using db = await tempStore();
  const { store } = db;
  const kv = store.kv;
  const id = "sess_free";
  const log = ["v1", "slog", id];
  const big = "x".repeat(PART_CHARS * 2);
  const texts = Array.from({ length: 12 }, (_, i) => (i === 8 ? big : `e${i + 1}`));
  await Promise.all(texts.map((t, i) => store.write(store.sessionLogWrites(id, i + 1, t, 60_000))));
  const all = texts.map((t, i): [number, string] => [i + 1, t]);
  ok((await values(kv, log)).length < 12, "the entries did not share values");

  await store.freeSessionLog(id, 0, 6, 60_000);
  deepEqual(await read(kv, log), all.slice(6));
  await store.freeSessionLog(id, 6, 9, 60_000);
  deepEqual(await read(kv, log), all.slice(9));
  // Freeing nothing new changes nothing.
  await store.freeSessionLog(id, 9, 9, 60_000);
  deepEqual(await read(kv, log), all.slice(9));
  await store.freeSessionLog(id, 9, 12, 60_000);
  deepEqual(await read(kv, log), []);
  equal((await values(kv, log)).length, 0);
});

/** A KV handle that records the `limit` of every listing opened through it. */
function countingKv(kv: Deno.Kv): { kv: Deno.Kv; limits: number[] } {
  const limits: number[] = [];
  const counting = new Proxy(kv, {
    get(target, prop) {
      if (prop === "list") {
        return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
          limits.push(options?.limit ?? Infinity);
          return target.list(selector, options);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: counting, limits };
}

/** Writes a log of commits of 1–7 small entries, with an entry stored in parts every 5th commit. */
async function windowedLog(store: Store): Promise<Array<[number, string]>> {
  const all: Array<[number, string]> = [];
  const big = (n: number) => `${n} ${"ünï ".repeat(Math.ceil((PART_CHARS * 2.5) / 4))}`;
  for (let commit = 0; commit < 40; commit++) {
    const texts = commit % 5 === 4
      ? [big(all.length + 1)]
      : Array.from({ length: (commit % 7) + 1 }, (_, i) => `entry ${all.length + i + 1}`);
    const first = all.length + 1;
    await Promise.all(texts.map((t, i) => store.write(logWrites(LOG, first + i, t))));
    all.push(...texts.map((t, i): [number, string] => [first + i, t]));
  }
  return all;
}

Deno.test("a log read in small windows with read-ahead comes back whole, in order and once from any position, across window edges and values in parts", async () => {
  await using db = await tempStore();
  const all = await windowedLog(db.store);
  const stored = (await values(db.store.kv, LOG)).length;
  const bigAt = all.filter(([, t]) => t.length > PART_CHARS).map(([n]) => n);
  ok(bigAt.length >= 5 && stored > 40, `${bigAt.length} split entries, ${stored} values`);
  const positions = [0, 1, 3, bigAt[0] - 1, bigAt[0], bigAt[2] + 1, all.length - 1, all.length];
  const sizes = [{ chars: 1, ahead: 1 }, { chars: 1, ahead: 3 }, { chars: 5_000, ahead: 2 }, {}];
  for (const windows of sizes) {
    for (const after of positions) {
      const { kv, limits } = countingKv(db.store.kv);
      const pages: Array<Array<[number, string]>> = [];
      for await (const page of listTextPages(kv, LOG, after, "the log", windows)) pages.push(page);
      const what = `windows ${JSON.stringify(windows)}, after ${after}`;
      deepEqual(pages.flat(), all.slice(after), what);
      if (windows.chars === 1 && after === 0) {
        // One value a read: every value's edge, a head's and each part's too, is a window's edge.
        ok(limits.every((limit) => limit === 1), what);
        ok(limits.length >= stored, `${what}: ${limits.length} reads for ${stored} values`);
      }
    }
  }
});

Deno.test("a listing reads at most its read-ahead of windows beyond what its reader took, and sizes windows to the values", async () => {
  await using db = await tempStore();
  // One value per entry: commits of one entry each.
  for (let n = 1; n <= 60; n++) await db.store.write(logWrites(LOG, n, `entry ${n}`));
  for (const ahead of [1, 2, 4]) {
    const { kv, limits } = countingKv(db.store.kv);
    let taken = 0;
    for await (const page of listTextPages(kv, LOG, -1, "the log", { chars: 1, ahead })) {
      taken += page.length;
      ok(limits.length <= taken + ahead, `ahead ${ahead}: ${limits.length} reads, ${taken} taken`);
      if (taken === 10) break;
    }
    equal(taken, 10);
  }
  // At the default window, small values are read many at a time after the first read.
  const { kv, limits } = countingKv(db.store.kv);
  deepEqual((await Array.fromAsync(listTextPages(kv, LOG))).flat().map(([n]) => n), range(1, 60));
  ok(limits.length <= 3 && limits.slice(1).every((l) => l > 60), `limits ${limits}`);
});

/** from..to */
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

Deno.test("the writes of a job's commit all have one shape: the committer's reads of them stay monomorphic", async () => {
  await using db = await tempStore();
  const { store } = db;
  const job = jobRecord();

  const ended: JobRecord = { ...job, status: "success", ended_at: "2026-12-02T18:00:01.000Z" };
  const session: SessionRecord = {
    session_id: "sess_1",
    principal: "alice",
    created_at: "2026-12-02T18:00:00.000Z",
    last_seq: 0,
    acked_seq: 0,
    floor_seq: 0,
    resume_token_hash: "h",
    features: [],
  };
  const writes = [
    ...store.jobWrites(job, true),
    ...store.jobUpdateWrites(job),
    ...store.jobWrites(ended),
    ...store.jobWrites(ended, true),
    store.sessionWrite(session, 60_000),
    ...store.sessionLogWrites("sess_1", 1, "{}", 60_000),
    ...store.jobLogWrites("job_1", 1, "{}"),
    ...logWrites(["log"], 1, "x"),
    ...textWrites(["text"], "x", 1_000),
  ];
  const shape = Object.keys(writes[0]);
  for (const w of writes) deepEqual(Object.keys(w), shape, JSON.stringify(w.key));
  // What KV stores is the value alone: a delete stays a delete, a value is not wrapped.
  const live = store.jobWrites(ended)[1];
  equal(live.value, undefined);
  equal(store.jobWrites(job)[0].value, job);
});
