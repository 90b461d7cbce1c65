import { deepEqual, equal, ok } from "assert";
import { GroupCommitter, isStorageFailure } from "../../src/store/group_commit.ts";
import type { KvWrite } from "../../src/store/large_value.ts";

/**
 * A real KV file whose commits can be made to fail, the way SQLite fails
 * them on a full disk. (tests/store/commit_failure_test.ts does it with a
 * real full filesystem; this one is deterministic.)
 */
async function flakyKv(): Promise<
  { kv: Deno.Kv; real: Deno.Kv; state: { error?: Error; attempts: number } } & AsyncDisposable
> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_gcf_" });
  const real = await Deno.openKv(`${dir}/test.kv`);
  const state: { error?: Error; attempts: number } = { attempts: 0 };
  const kv = {
    atomic() {
      const op = real.atomic();
      const wrapped = {
        set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) {
          op.set(key, value, options);
          return wrapped;
        },
        delete(key: Deno.KvKey) {
          op.delete(key);
          return wrapped;
        },
        commit() {
          state.attempts++;
          if (state.error) return Promise.reject(state.error);
          return op.commit();
        },
      };
      return wrapped;
    },
  } as unknown as Deno.Kv;
  return {
    kv,
    real,
    state,
    async [Symbol.asyncDispose]() {
      real.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const DISK_FULL = () => new TypeError("database or disk is full");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("storage errors are told apart from writes KV refuses for their own sake", () => {
  ok(isStorageFailure(DISK_FULL()));
  ok(isStorageFailure(new Error("disk I/O error")));
  ok(isStorageFailure(new Error("database is locked")));
  ok(isStorageFailure(new Error("No space left on device (os error 28)")));
  ok(!isStorageFailure(new TypeError("Value too large (max 65536 bytes)")));
  ok(!isStorageFailure(new TypeError("Too many mutations (max 1000)")));
  ok(!isStorageFailure(new Error("KV commit was refused")));
});

Deno.test("a storage failure holds writes back in order, reports each once, and they all land once it clears", async () => {
  await using db = await flakyKv();
  const stalls: Array<{ error: unknown; keys: Deno.KvKey[] }> = [];
  let recovered = 0;
  const gc = new GroupCommitter(db.kv, {
    onStall: (error, writes) => stalls.push({ error, keys: writes.map((w) => w.key) }),
    onRecover: () => recovered++,
  });
  db.state.error = DISK_FULL();
  const settled: string[] = [];
  const track = (name: string, p: Promise<void>) =>
    p.then(() => settled.push(name), (e) => settled.push(`${name} rejected: ${e}`));
  const first = track("a", gc.write([{ key: ["k"], value: 1 }, { key: ["a"], value: "a" }]));
  const second = track("b", gc.write([{ key: ["b"], value: "b" }]));
  await sleep(300);
  // Nothing settled: nothing is reported durable (or failed for good) while the disk is full.
  deepEqual(settled, []);
  ok(db.state.attempts >= 3, `only ${db.state.attempts} attempts in 300 ms`);
  ok(gc.stalled instanceof TypeError);
  equal(gc.failures, db.state.attempts);
  // Each stalled write was reported exactly once, however often it was retried.
  equal(stalls.length, 1);
  deepEqual(stalls[0].keys, [["k"], ["a"], ["b"]]);
  // A flush that must not wait fails at once with the storage error.
  const fast = await gc.flush({ failFast: true }).then(() => "resolved", (e) => String(e));
  equal(fast, "TypeError: database or disk is full");
  // A write queued during the stall is reported on the next failed attempt.
  const third = track("c", gc.write([{ key: ["k"], value: 3 }]));
  const deadline = Date.now() + 5000;
  while (stalls.length < 2 && Date.now() < deadline) await sleep(20);
  deepEqual(stalls[1]?.keys, [["k"]]);
  equal((await db.real.get(["a"])).value, null);

  db.state.error = undefined;
  await Promise.all([first, second, third]);
  deepEqual(settled, ["a", "b", "c"]);
  equal(recovered, 1);
  equal(gc.stalled, undefined);
  equal((await db.real.get(["k"])).value, 3, "a held-back write overtook a later one");
  equal((await db.real.get(["a"])).value, "a");
  equal((await db.real.get(["b"])).value, "b");
  await gc.flush({ failFast: true });
});

Deno.test("a write KV refuses is rejected alone; the writes batched with it still land in order", async () => {
  await using db = await flakyKv();
  let stalled = 0;
  const gc = new GroupCommitter(db.kv, { onStall: () => stalled++ });
  const tooBig = "x".repeat(70_000);
  const results = await Promise.allSettled([
    gc.write([{ key: ["one"], value: 1 }]),
    gc.write([{ key: ["big"], value: tooBig }] satisfies KvWrite[]),
    gc.write([{ key: ["two"], value: 2 }]),
  ]);
  deepEqual(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
  ok(/too large/i.test(String((results[1] as PromiseRejectedResult).reason)));
  equal((await db.real.get(["one"])).value, 1);
  equal((await db.real.get(["two"])).value, 2);
  equal((await db.real.get(["big"])).value, null);
  equal(stalled, 0);
  // The committer goes on batching normally afterwards.
  const before = gc.commits;
  await Promise.all(Array.from({ length: 20 }, (_, i) => gc.write([{ key: ["n", i], value: i }])));
  ok(gc.commits - before < 20, `${gc.commits - before} commits for 20 writes`);
});

Deno.test("closing while the disk is full rejects what cannot be committed, and close resolves", async () => {
  await using db = await flakyKv();
  const gc = new GroupCommitter(db.kv);
  db.state.error = DISK_FULL();
  const held = gc.write([{ key: ["x"], value: 1 }]).then(() => "resolved", (e) => String(e));
  await sleep(100);
  await gc.close();
  equal(await held, "TypeError: database or disk is full");
  equal((await db.real.get(["x"])).value, null);
});

Deno.test("a fail-fast write is refused, never held: dropped when a failure catches it queued, refused at once while commits fail", async () => {
  await using db = await flakyKv();
  let recover!: () => void;
  const recovered = new Promise<void>((r) => recover = r);
  const gc = new GroupCommitter(db.kv, {
    probe: { key: ["probe"], value: "p" },
    onRecover: () => recover(),
  });
  db.state.error = DISK_FULL();
  const held = gc.write([{ key: ["held"], value: 1 }]);
  const queued = gc.write([{ key: ["fast"], value: 1 }], { failFast: true })
    .then(() => "resolved", (e) => String(e));
  // Caught in the failing batch with a held write: refused, the held one kept.
  equal(await queued, "TypeError: database or disk is full");
  ok(gc.stalled instanceof TypeError);
  const atOnce = await gc.write([{ key: ["late"], value: 1 }], { failFast: true })
    .then(() => "resolved", (e) => String(e));
  equal(atOnce, "TypeError: database or disk is full");

  db.state.error = undefined;
  await held;
  await recovered;
  equal((await db.real.get(["held"])).value, 1);
  equal((await db.real.get(["fast"])).value, null, "a refused write landed later");
  equal((await db.real.get(["late"])).value, null, "a refused write landed later");
  await gc.write([{ key: ["after"], value: 1 }], { failFast: true });
  equal((await db.real.get(["after"])).value, 1);
});

Deno.test("when every failed write was refused, the probe keeps retrying and notices recovery", async () => {
  await using db = await flakyKv();
  let recover!: () => void;
  const recovered = new Promise<void>((r) => recover = r);
  const gc = new GroupCommitter(db.kv, {
    probe: { key: ["probe"], value: "p" },
    onRecover: () => recover(),
  });
  db.state.error = DISK_FULL();
  const refused = await gc.write([{ key: ["fast"], value: 1 }], { failFast: true })
    .then(() => "resolved", (e) => String(e));
  equal(refused, "TypeError: database or disk is full");
  // Nothing is queued, yet the committer still knows storage fails and keeps trying.
  const attempts = db.state.attempts;
  while (db.state.attempts < attempts + 2) await sleep(20);
  ok(gc.stalled instanceof TypeError);
  ok(gc.stalledSince! <= Date.now());
  db.state.error = undefined;
  await recovered;
  equal(gc.stalled, undefined);
  equal((await db.real.get(["probe"])).value, "p");
  equal((await db.real.get(["fast"])).value, null);
});

Deno.test("without a probe, a committer that holds nothing stops counting itself stalled", async () => {
  await using db = await flakyKv();
  const gc = new GroupCommitter(db.kv);
  db.state.error = DISK_FULL();
  const refused = await gc.write([{ key: ["fast"], value: 1 }], { failFast: true })
    .then(() => "resolved", (e) => String(e));
  equal(refused, "TypeError: database or disk is full");
  await gc.flush();
  equal(gc.stalled, undefined);
});
