import { deepEqual, equal, ok } from "assert";
import { listTexts, logWrites, PART_CHARS, SEGMENT_CHARS, SEGMENT_ENTRIES } from "./large_value.ts";
import { Store } from "./store.ts";

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
