import { deepEqual, equal, ok } from "assert";
import { GroupCommitter } from "./group_commit.ts";
import { setTurnSliceMs } from "../turn_slice.ts";
import { KEEP_MS, type KvWrite, listTexts, logWrites, textWrites } from "./large_value.ts";

/** A KV database in a fresh temp dir, removed on dispose. */
async function tempKv(): Promise<{ kv: Deno.Kv } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_gc_" });
  const kv = await Deno.openKv(`${dir}/test.kv`);
  return {
    kv,
    async [Symbol.asyncDispose]() {
      kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("writes queued in one tick share fewer commits than there are writes", async () => {
  await using db = await tempKv();
  const gc = new GroupCommitter(db.kv);
  const n = 50;
  await Promise.all(
    Array.from({ length: n }, (_, i) => gc.write([{ key: ["k", i], value: { i } }])),
  );
  ok(gc.commits >= 1 && gc.commits < n, `${gc.commits} commits for ${n} writes`);
  for (let i = 0; i < n; i++) deepEqual((await db.kv.get(["k", i])).value, { i });
});

Deno.test("small objects share a commit by what they measure, not by the most a value may take", async () => {
  await using db = await tempKv();
  const gc = new GroupCommitter(db.kv);
  const n = 300;
  // The first commits alone; the rest queue meanwhile. Counted at KV's bound
  // for one value (64 KiB) they would need dozens of commits.
  await Promise.all(
    Array.from({ length: n }, (_, i) => gc.write([{ key: ["o", i], value: { i, s: "x" } }])),
  );
  ok(gc.commits <= 3, `${gc.commits} commits for ${n} small objects`);
  for (let i = 0; i < n; i++) deepEqual((await db.kv.get(["o", i])).value, { i, s: "x" });
});

Deno.test("objects past what one commit may hold are split by their measured size, never refused", async () => {
  await using db = await tempKv();
  const gc = new GroupCommitter(db.kv);
  const n = 30;
  // Each ~62 KB as KV stores it (a UTF-16 text nested in arrays and
  // objects), just under KV's bound for one value: counted at a byte a
  // character, a batch would pass KV's 800 KiB for one commit, KV would
  // refuse it, and every write would then commit alone (n commits).
  const text = "ü✓".repeat(15_000);
  const value = (i: number) => ({ i, parts: [{ text }, [text.slice(0, 500)]], at: new Date(0) });
  await Promise.all(
    Array.from({ length: n }, (_, i) => gc.write([{ key: ["big", i], value: value(i) }])),
  );
  ok(gc.commits > 2 && gc.commits < n, `${gc.commits} commits for ${n} large objects`);
  for (let i = 0; i < n; i++) deepEqual((await db.kv.get(["big", i])).value, value(i));
});

Deno.test("a write resolves only once it is durable, and later writes to one key win", async () => {
  await using db = await tempKv();
  const gc = new GroupCommitter(db.kv);
  const first = gc.write([{ key: ["same"], value: 1 }, { key: ["other"], value: "a" }]);
  const second = gc.write([{ key: ["same"], value: 2 }, { key: ["gone"], value: "x" }]);
  const third = gc.write([{ key: ["gone"] }]);
  await Promise.all([first, second, third]);
  equal((await db.kv.get(["same"])).value, 2);
  equal((await db.kv.get(["other"])).value, "a");
  equal((await db.kv.get(["gone"])).value, null);
  await gc.flush();
});

Deno.test("more writes than one atomic commit allows are split across commits and all land", async () => {
  await using db = await tempKv();
  const gc = new GroupCommitter(db.kv);
  const n = 2500;
  await Promise.all(
    Array.from({ length: n }, (_, i) => gc.write([{ key: ["many", i], value: i }])),
  );
  ok(gc.commits >= 3, `${gc.commits} commits for ${n} single-key writes`);
  let count = 0;
  for await (const e of db.kv.list<number>({ prefix: ["many"] })) {
    equal(e.value, e.key[1]);
    count++;
  }
  equal(count, n);
});

Deno.test("a text over 64 KiB written via textWrites reads back intact via listTexts", async () => {
  await using db = await tempKv();
  const gc = new GroupCommitter(db.kv);
  // Non-Latin-1 characters make V8 store the string as UTF-16: 2 bytes per char.
  const unit = "ARCP ✓ ünïcödé 🚀 ";
  const big = unit.repeat(Math.ceil(200_000 / unit.length));
  ok(new TextEncoder().encode(big).byteLength > 64 * 1024 * 3);
  const writes: KvWrite[] = [
    ...textWrites(["log", 0], "small before"),
    ...textWrites(["log", 1], big),
    ...textWrites(["log", 2], "small after"),
  ];
  ok(writes.length > 3, "the big text was not split");
  await gc.write(writes);
  const got: Array<[number, string]> = [];
  for await (const entry of listTexts(db.kv, ["log"])) got.push(entry);
  equal(got.length, 3);
  deepEqual(got.map(([n]) => n), [0, 1, 2]);
  equal(got[0][1], "small before");
  equal(got[1][1].length, big.length);
  ok(got[1][1] === big, "the big text came back changed");
  equal(got[2][1], "small after");
  // Listing after a position skips the earlier entries, parts included.
  const after: number[] = [];
  for await (const [n] of listTexts(db.kv, ["log"], 0)) after.push(n);
  deepEqual(after, [1, 2]);
});

Deno.test("batches adapt to what is queued, never reorder, and settle each write only once it is durable", async () => {
  await using db = await tempKv();
  const gc = new GroupCommitter(db.kv);
  // A fixed pseudo-random mix, so a failure replays the same way.
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const logs = [["log", "a"], ["log", "b"], ["log", "c"]];
  const next = [0, 0, 0];
  const settled: number[] = [];
  const checks: Array<Promise<void>> = [];
  const writes: Array<Promise<void>> = [];
  const expectedRecord = new Map<string, number>();
  const n = 3000;
  for (let i = 0; i < n; i++) {
    const r = rand();
    const batch: KvWrite[] = [];
    const l = Math.floor(rand() * logs.length);
    const pos = ++next[l];
    batch.push(...logWrites(logs[l], pos, `entry ${pos} of ${l} ${"·".repeat(rand() * 200)}`));
    const rec = `r${Math.floor(rand() * 5)}`;
    batch.push({ key: ["rec", rec], value: { i } });
    expectedRecord.set(rec, i);
    // Now and then a write that fills much of a commit by bytes or by mutations.
    if (r < 0.01) batch.push({ key: ["bulk", i], value: "y".repeat(60_000) });
    else if (r < 0.02) {
      for (let k = 0; k < 300; k++) batch.push({ key: ["many", i, k], value: k });
    }
    writes.push(
      gc.write(batch).then(() => {
        settled.push(i);
        // Durable by the time it settles: the entry reads back at once.
        checks.push((async () => {
          const got = [];
          for await (const [m] of listTexts(db.kv, logs[l], pos - 1)) {
            got.push(m);
            break;
          }
          deepEqual(got, [pos], `write ${i} settled before its entry was in KV`);
        })());
      }),
    );
    // Writers come in bursts: some ticks queue many, some one.
    if (rand() < 0.05) await new Promise((r) => setTimeout(r, 0));
  }
  await Promise.all(writes);
  await Promise.all(checks);
  deepEqual(settled, Array.from({ length: n }, (_, i) => i), "writes settled out of order");
  ok(gc.commits > 3 && gc.commits < n / 10, `${gc.commits} commits for ${n} writes`);
  for (const [rec, i] of expectedRecord) deepEqual((await db.kv.get(["rec", rec])).value, { i });
  for (let l = 0; l < logs.length; l++) {
    const got: number[] = [];
    for await (const [m] of listTexts(db.kv, logs[l])) got.push(m);
    deepEqual(got, Array.from({ length: next[l] }, (_, i) => i + 1), `log ${l}`);
  }
});

/** A KV whose commits fail while `failing` is set, the way SQLite fails them on a full disk. */
function failingKv(kv: Deno.Kv): { kv: Deno.Kv; state: { failing: boolean } } {
  const state = { failing: false };
  const wrapped = {
    atomic() {
      const op = kv.atomic();
      const outer = {
        set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) {
          op.set(key, value, options);
          return outer;
        },
        delete(key: Deno.KvKey) {
          op.delete(key);
          return outer;
        },
        commit() {
          return state.failing
            ? Promise.reject(new TypeError("database or disk is full"))
            : op.commit();
        },
      };
      return outer;
    },
  } as unknown as Deno.Kv;
  return { kv: wrapped, state };
}

Deno.test("log entries held back by a storage failure settle nothing until they land, then all land in order", async () => {
  await using db = await tempKv();
  const flaky = failingKv(db.kv);
  const stall = Promise.withResolvers<void>();
  const gc = new GroupCommitter(flaky.kv, { onStall: () => stall.resolve() });
  flaky.state.failing = true;
  const settled: number[] = [];
  const writes = Array.from(
    { length: 300 },
    (_, i) => gc.write(logWrites(["log"], i + 1, `e${i + 1}`)).then(() => settled.push(i + 1)),
  );
  await stall.promise;
  deepEqual(settled, [], "an entry settled while commits were failing");
  ok(gc.stalled !== undefined);
  flaky.state.failing = false;
  await Promise.all(writes);
  deepEqual(settled, Array.from({ length: 300 }, (_, i) => i + 1));
  const got: number[] = [];
  for await (const [n] of listTexts(db.kv, ["log"])) got.push(n);
  deepEqual(got, Array.from({ length: 300 }, (_, i) => i + 1));
});

Deno.test("a write KV refuses fails alone; log entries batched around it still land in order", async () => {
  await using db = await tempKv();
  const gc = new GroupCommitter(db.kv);
  const results = await Promise.allSettled([
    gc.write([...logWrites(["log"], 1, "a"), ...logWrites(["log"], 2, "b")]),
    gc.write([{ key: ["big"], value: "x".repeat(70_000) }]),
    gc.write(logWrites(["log"], 3, "c")),
  ]);
  deepEqual(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
  const got: Array<[number, string]> = [];
  for await (const entry of listTexts(db.kv, ["log"])) got.push(entry);
  deepEqual(got, [[1, "a"], [2, "b"], [3, "c"]]);
  equal((await db.kv.get(["big"])).value, null);
});

Deno.test("a batch bigger than a turn's bound is taken, filled and settled over several turns: all land, in order, each settled after its commit, other work runs between", async () => {
  await using db = await tempKv();
  // Every look at the budget after the first of a turn finds it spent:
  // taking, filling and settling a batch yield after every chunk.
  const before = setTurnSliceMs(0);
  try {
    const gc = new GroupCommitter(db.kv);
    const n = 200;
    const settled: number[] = [];
    const durable: Promise<unknown>[] = [];
    let otherSawSettled: number | undefined;
    // Another source of macrotasks (as a socket would be): its message,
    // posted mid-batch, must be taken before the batch has settled.
    const other = new MessageChannel();
    other.port1.onmessage = () => {
      otherSawSettled = settled.length;
      other.port1.close();
    };
    const writes = Array.from(
      { length: n },
      (_, i) =>
        gc.write([{ key: ["slice", i], value: i }]).then(() => {
          settled.push(i);
          durable[i] = db.kv.get<number>(["slice", i]).then((e) => e.value);
          // Queued once the first write of the big second batch has settled.
          if (i === 1) {
            other.port2.postMessage(null);
            other.port2.close();
          }
        }),
    );
    await Promise.all(writes);
    deepEqual(settled, Array.from({ length: n }, (_, i) => i), "writes settled out of order");
    deepEqual(await Promise.all(durable), settled, "a write settled before it was committed");
    ok(
      otherSawSettled !== undefined && otherSawSettled < n,
      `a message posted mid-batch was taken only after all ${n} writes settled`,
    );
    ok(gc.commits < n, "the writes were not batched");
  } finally {
    setTurnSliceMs(before);
  }
});

Deno.test("onDurable runs as its write settles: before anything waiting on it or on a later write, never for a refused write", async () => {
  await using db = await tempKv();
  const gc = new GroupCommitter(db.kv);
  const order: string[] = [];
  // The first commits alone; the rest share the next commit, settled in queue order.
  const first = gc.write([{ key: ["d", 0], value: 0 }]).then(() => order.push("w0"));
  const second = gc.write([{ key: ["d", 1], value: 1 }], {
    onDurable: () => order.push("durable1"),
  })
    .then(() => order.push("w1"));
  const third = gc.write([{ key: ["d", 2], value: 2 }]).then(() => order.push("w2"));
  // KV refuses a key this large for its own sake: the write fails and its hook never runs.
  const refused = gc.write([{ key: ["d", "x".repeat(3000)], value: 3 }], {
    onDurable: () => order.push("durable3"),
  }).catch(() => order.push("refused3"));
  await Promise.all([first, second, third, refused]);
  deepEqual(order.filter((s) => s !== "w0"), ["durable1", "w1", "w2", "refused3"]);
});

Deno.test("the next batch commits while a batch's waiters run: hooks and waiters still run in queue order, each after its commit, and what the last waiter queues lands", async () => {
  await using db = await tempKv();
  // Settling yields after every chunk, so the next batch is taken and committed meanwhile.
  const before = setTurnSliceMs(0);
  try {
    const gc = new GroupCommitter(db.kv);
    // More writes than one commit holds: several batches, each settling as the next commits.
    const n = 2000;
    const order: string[] = [];
    const durable: Promise<unknown>[] = [];
    let tailSettled = false;
    const writes = Array.from(
      { length: n },
      (_, i) =>
        gc.write([{ key: ["p", i], value: i }], { onDurable: () => order.push(`d${i}`) })
          .then(() => {
            order.push(`w${i}`);
            durable[i] = db.kv.get<number>(["p", i]).then((e) => e.value);
            // Queued by a waiter of the last batch, as its drain is ending.
            if (i === n - 1) gc.write([{ key: ["tail"], value: 1 }]).then(() => tailSettled = true);
          }),
    );
    await Promise.all(writes);
    await gc.flush();
    const expected = Array.from({ length: n }, (_, i) => [`d${i}`, `w${i}`]);
    deepEqual(
      order.filter((s) => s.startsWith("d")),
      expected.map(([d]) => d),
      "hooks out of order",
    );
    deepEqual(
      order.filter((s) => s.startsWith("w")),
      expected.map(([, w]) => w),
      "waiters out of order",
    );
    for (let i = 0; i < n; i++) {
      ok(order.indexOf(`d${i}`) < order.indexOf(`w${i}`), `write ${i} settled before its hook`);
    }
    deepEqual(await Promise.all(durable), Array.from({ length: n }, (_, i) => i));
    ok(tailSettled, "a write queued by the last waiter was left behind");
    equal((await db.kv.get(["tail"])).value, 1);
    ok(gc.commits >= 3 && gc.commits < n, `${gc.commits} commits for ${n} writes`);
  } finally {
    setTurnSliceMs(before);
  }
});

Deno.test("a lone write is handed to KV in the drain's first microtask: what its writer queued behind it runs while KV commits", async () => {
  await using db = await tempKv();
  const events: string[] = [];
  // The real database, its commits noted as they are handed to it.
  const kv = {
    atomic: () => {
      const op = db.kv.atomic();
      const commit = op.commit.bind(op);
      op.commit = () => {
        events.push("commit");
        return commit();
      };
      return op;
    },
  } as unknown as Deno.Kv;
  const gc = new GroupCommitter(kv);
  const written = gc.write([{ key: ["k"], value: { a: 1 } }, { key: ["l"], value: "text" }]);
  queueMicrotask(() => events.push("queued behind"));
  await written;
  deepEqual(events, ["commit", "queued behind"]);
  deepEqual((await db.kv.get(["k"])).value, { a: 1 });
  equal((await db.kv.get(["l"])).value, "text");
  equal(gc.commits, 1);
});

Deno.test("a write without a time to live is set to expire KEEP_MS away; one with its own keeps it", async () => {
  await using db = await tempKv();
  const seen = new Map<string, number | undefined>();
  const recording = {
    atomic() {
      const op = db.kv.atomic();
      const outer = {
        set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) {
          seen.set(String(key[0]), options?.expireIn);
          op.set(key, value, options);
          return outer;
        },
        delete(key: Deno.KvKey) {
          op.delete(key);
          return outer;
        },
        commit: () => op.commit(),
      };
      return outer;
    },
  } as unknown as Deno.Kv;
  const gc = new GroupCommitter(recording);
  await gc.write([
    { key: ["record"], value: { a: 1 } },
    ...logWrites(["log"], 1, "e1"),
    ...logWrites(["ttl"], 1, "e1", 60_000),
  ]);
  deepEqual(Object.fromEntries(seen), { record: KEEP_MS, log: KEEP_MS, ttl: 60_000 });
  deepEqual((await db.kv.get(["record"])).value, { a: 1 });
});
