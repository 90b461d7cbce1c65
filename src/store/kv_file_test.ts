import { deepEqual, equal, ok, rejects } from "assert";
import { checkStoreFile, decodeKey, formatKey, KvFile } from "./kv_file.ts";
import { StoreDamageError } from "./damage.ts";

/** A KV file in a fresh temp dir holding `entries`, closed; removed on dispose. */
async function storeWith(
  entries: Array<[Deno.KvKey, unknown]>,
): Promise<{ path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_kvfile_" });
  const path = `${dir}/test.kv`;
  const kv = await Deno.openKv(path);
  for (const [key, value] of entries) await kv.set(key, value);
  kv.close();
  return { path, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

const KEYS: Deno.KvKey[] = [
  ["v1", "slog", "sess_01", 0],
  ["v1", "slog", "sess_01", 2.5],
  ["v1", "pjob", "alice", 1_790_000_000_000, "job_01"],
  ["a\u0000b", -1, -0.001, Infinity, -Infinity],
  ["é✓", true, false],
  [new Uint8Array([0, 255, 0, 1])],
  [0n, -1n, 255n, -256n, 2n ** 63n, 2n ** 70n],
];

Deno.test("keys and values read straight from the file are what Deno.Kv lists, in its order", async () => {
  const values = [
    "text",
    { a: [1, "é"], d: new Date(0) },
    new Uint8Array([1, 2]),
    "✓".repeat(20_000),
  ];
  await using store = await storeWith(KEYS.map((k, i) => [k, values[i % values.length]]));
  const kv = await Deno.openKv(store.path);
  const listed: Array<[string, unknown]> = [];
  for await (const e of kv.list({ prefix: [] })) listed.push([formatKey(e.key), e.value]);
  kv.close();
  using file = KvFile.open(store.path);
  const walked: Array<[string, unknown]> = [];
  for (const item of file.walk()) {
    if (!("entry" in item)) throw new Error(`damage in a sound store: ${item.damage.problem}`);
    walked.push([formatKey(item.entry.key), item.entry.value]);
  }
  deepEqual(walked, listed);
  deepEqual(file.integrity(), []);
});

Deno.test("texts and arrays of texts (log entries sharing a value) read straight from the file are what Deno.Kv returns", async () => {
  const values: unknown[] = [
    "",
    "é".repeat(3),
    "ünï😀",
    ["a"],
    ["a", "é", "😀x", ""],
    Array.from({ length: 300 }, (_, i) => "x".repeat(i) + (i % 3 ? "é" : i % 5 ? "😀" : "")),
    ["y".repeat(200), "ü".repeat(129)],
    [],
    ["a", 1],
    [1, 2],
  ];
  await using store = await storeWith(values.map((v, i) => [["log", i], v]));
  using file = KvFile.open(store.path);
  const walked: unknown[] = [];
  for (const item of file.walk()) {
    if (!("entry" in item)) throw new Error(`damage in a sound store: ${item.damage.problem}`);
    walked.push(item.entry.value);
  }
  deepEqual(walked, values);
});

Deno.test("decodeKey refuses a truncated key and a tag it does not know", () => {
  const ok1 = decodeKey(new Uint8Array([0x02, 0x61, 0x00]));
  deepEqual(ok1, ["a"]);
  for (const bad of [[0x02, 0x61], [0x21, 0x80, 0x00], [0x7f]]) {
    let threw = false;
    try {
      decodeKey(new Uint8Array(bad));
    } catch {
      threw = true;
    }
    ok(threw, `decoded ${bad}`);
  }
});

Deno.test("the start check passes a sound store and a missing or empty file, and names the file when it is not a database", async () => {
  await using store = await storeWith([[["v1", "job", "j"], { x: 1 }]]);
  await checkStoreFile(store.path);
  await checkStoreFile(`${store.path}.absent`);
  await Deno.writeFile(`${store.path}.empty`, new Uint8Array());
  await checkStoreFile(`${store.path}.empty`);
  const garbage = `${store.path}.garbage`;
  await Deno.writeFile(garbage, new Uint8Array(8192).fill(0x5a));
  await rejects(() => checkStoreFile(garbage), (err: unknown) => {
    ok(err instanceof StoreDamageError);
    equal(err.kind, "unreadable");
    equal(err.message, `storage: KV store ${garbage} cannot be read: file is not a database`);
    return true;
  });
});
