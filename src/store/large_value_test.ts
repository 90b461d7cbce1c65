import { deepEqual, equal, ok, rejects } from "assert";
import { StoreDamageError } from "./damage.ts";
import { listTexts, TextAssembler, textWrites } from "./large_value.ts";

/** Feeds writes to an assembler as a listing would return them; collects texts and problems. */
function assemble(
  entries: Array<[Deno.KvKey, unknown]>,
): { texts: Array<[number, string]>; problems: StoreDamageError[] } {
  const problems: StoreDamageError[] = [];
  const assembler = new TextAssembler("the log", (e) => problems.push(e));
  const texts: Array<[number, string]> = [];
  for (const [key, value] of entries) {
    const whole = assembler.add(key, value);
    if (whole) texts.push(whole);
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
