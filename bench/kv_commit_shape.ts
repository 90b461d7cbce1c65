/**
 * What one KV commit costs by its shape, for deciding which of a job's
 * writes are worth removing: the same values committed under as many key
 * prefixes as a reused echo job's commit touches, under one prefix side by
 * side, fewer of them, and two keys (figure 11d's floor). Each shape is
 * committed in turn, rounds alternating, on one KV file that already holds
 * some history, and reported with the CPU time of KV's writer thread per
 * commit (`/proc/self/task/*`, threads named `sw-*`) beside its latency.
 * The echo-job shapes are a reused echo job's one commit before and after
 * its runtime-log entries shared a value and its live-entry delete went; the
 * shared-commit shapes move its list_jobs and retention entries to a later
 * commit of several jobs (its latency samples include that commit, its
 * writer time its share).
 * Every write expires as the group committer sets it (`setOptions`: the
 * session log its own day, the rest `KEEP_MS` away), so the expiry index
 * takes the pages it takes in the runtime.
 * Reports; asserts nothing.
 *
 * ```sh
 * deno run -A --unstable-kv bench/kv_commit_shape.ts
 * # paced as figure 11b's jobs (the disk and KV's writer idle between commits), three shapes:
 * deno run -A --unstable-kv bench/kv_commit_shape.ts --gap-ms 50 --per-round 60 --rounds 6 \
 *   --only "echo job, 9" --only "9 keys under 1" --only "2 keys"
 * ```
 *
 * On this runtime's store the writer's cost follows the B-tree pages a
 * commit dirties, so keys under prefixes of their own cost more than
 * mutations that land beside one another (a log's second entry, a
 * delete of a key that is not there).
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { fmt, stats } from "./_util.ts";
import { setOptions } from "../src/store/large_value.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "gap-ms": { type: "string" },
    "per-round": { type: "string" },
    rounds: { type: "string" },
    only: { type: "string", multiple: true },
  },
});
/** Commits per shape per round, and rounds. */
const PER_ROUND = Number(values["per-round"] ?? 250);
const ROUNDS = Number(values.rounds ?? 8);
/** Idle time between commits: 0 back to back; 50 as jobs at 20 a second. */
const GAP_MS = Number(values["gap-ms"] ?? 0);
/** Shapes whose name starts with one of these (`--only`, repeated); all when absent. */
const ONLY: string[] | undefined = values.only;

/** The session log's time to live in the runtime (a day); every other key keeps `KEEP_MS`. */
const SESSION_LOG_TTL = 86_400_000;
/** The options the group committer sets a write under `prefix` with. */
const options = (prefix: string) =>
  setOptions({ expireIn: prefix === "slog" ? SESSION_LOG_TTL : undefined });
/** Sets `key` to `value` on `op` with the expiry the runtime gives it. */
const put = (op: Deno.AtomicOperation, key: Deno.KvKey, value: unknown) =>
  op.set(key, value, options(String(key[1])));

/** Value sizes of the six keys of a reused echo job's commit besides its runtime-log entries … */
const SIZES = [700, 700, 500, 360, 0, 40];
/** … and the prefixes they go under: logs, record, status and agent entries, retention. */
const PREFIXES = ["slog", "jlog", "job", "pjs", "pja", "ended"];
/** A runtime-log entry's size. */
const ENTRY = 220;

/** CPU time (ms) of this process's KV writer threads so far. */
function writerMs(): number {
  let ms = 0;
  for (const e of Deno.readDirSync("/proc/self/task")) {
    const stat = Deno.readTextFileSync(`/proc/self/task/${e.name}/stat`);
    if (!stat.includes("(sw-")) continue;
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime, in clock ticks of 10 ms.
    ms += (Number(f[11]) + Number(f[12])) * 10;
  }
  return ms;
}

const dir = await Deno.makeTempDir({ prefix: "arcp_kv_shape_" });
const kv = await Deno.openKv(`${dir}/bench.kv`);
try {
  // History, so the logs' trees have depth, as a store that has served a while does.
  for (let j = 0; j < 200; j++) {
    const op = kv.atomic();
    for (let k = 0; k < 40; k++) {
      for (const p of ["slog", "jlog"]) put(op, ["v1", p, `pre_${j}_${k}`], "p".repeat(300));
    }
    await op.commit();
  }
  let n = 0;
  const text = (size: number) => "x".repeat(size);
  /** The six keys every shape of a job's commit writes. */
  const jobKeys = (op: Deno.AtomicOperation) => {
    PREFIXES.forEach((p, i) => put(op, ["v1", p, `j${n}`], text(SIZES[i])));
    return op;
  };
  /** A ULID-like id: later jobs sort after earlier ones, as minted ids do. */
  const id = (k: number) => `J${String(k).padStart(10, "0")}`;
  /** Jobs whose index entries wait for the shared commit. */
  let deferred: number[] = [];
  /** The three index entries of each deferred job (and its marker's delete) in one commit. */
  const indexCommit = (marker: boolean) => {
    const op = kv.atomic();
    for (const k of deferred) {
      put(op, ["v1", "pjs", "p", "completed", k, id(k)], text(SIZES[3]));
      put(op, ["v1", "pja", "p", "echo", "completed", k, id(k)], null);
      put(op, ["v1", "ended", k, id(k)], text(SIZES[5]));
      if (marker) op.delete(["v1", "jobx", "p", k, id(k)]);
    }
    deferred = [];
    return op;
  };
  /**
   * A job's commit without its index entries (logs, record, runtime log, the
   * live entry's delete) and, to survive a crash before the shared commit, a
   * marker holding them right after the job records' region (`"jobx"` sorts
   * after `"job"`); every `batch` jobs, the shared commit.
   */
  const deferredJob = (batch: number, marker: boolean) => () => async () => {
    const op = kv.atomic();
    put(op, ["v1", "slog", `j${n}`], text(SIZES[0]));
    put(op, ["v1", "jlog", `j${n}`], text(SIZES[1]));
    put(op, ["v1", "job", id(n)], text(SIZES[2]));
    put(op, ["v1", "rtlog", 2 * n + 1], [text(ENTRY), text(ENTRY)]);
    op.delete(["v1", "plive", "p", n, id(n)]);
    if (marker) put(op, ["v1", "jobx", "p", n, id(n)], text(SIZES[3]));
    await op.commit();
    deferred.push(n);
    if (deferred.length === batch) await indexCommit(marker).commit();
  };
  const shapes: Record<string, () => Deno.AtomicOperation | (() => Promise<unknown>)> = {
    "index in a shared commit per 4 jobs, a marker in the job's": deferredJob(4, true),
    "index in a shared commit per 16 jobs, a marker in the job's": deferredJob(16, true),
    "index in a shared commit per 16 jobs, no marker (not crash-safe)": deferredJob(16, false),
    "echo job, 9 mutations: 2 runtime-log entries, a delete of an absent live entry": () => {
      const op = jobKeys(kv.atomic());
      put(op, ["v1", "rtlog", 2 * n], text(ENTRY));
      put(op, ["v1", "rtlog", 2 * n + 1], text(ENTRY));
      return op.delete(["v1", "plive", `j${n}`]);
    },
    "echo job, 7 mutations: the 2 entries in one value, no delete": () =>
      put(jobKeys(kv.atomic()), ["v1", "rtlog", 2 * n + 1], [text(ENTRY), text(ENTRY)]),
    "9 keys under 9 prefixes": () => {
      const op = jobKeys(kv.atomic());
      put(op, ["v1", "rtlog", 2 * n], text(ENTRY));
      put(op, ["v1", "sess", `j${n}`], text(ENTRY));
      return put(op, ["v1", "plive", `j${n}`], text(ENTRY));
    },
    "9 keys under 1 prefix, side by side": () => {
      const op = kv.atomic();
      [...SIZES, ENTRY, ENTRY, ENTRY].forEach((size, i) =>
        put(op, ["v1", "one", `j${n}`, i], text(size))
      );
      return op;
    },
    "2 keys under 2 prefixes (a record and a log entry)": () =>
      put(put(kv.atomic(), ["v1", "slog", `j${n}`], text(700)), ["v1", "job", `j${n}`], text(500)),
  };
  for (const name of Object.keys(shapes)) {
    if (ONLY && !ONLY.some((o: string) => name.startsWith(o))) delete shapes[name];
  }
  const cpu = new Map<string, number>();
  const latency = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++) {
    const names = Object.keys(shapes);
    if (round % 2 === 1) names.reverse();
    for (const name of names) {
      const samples = latency.get(name) ?? [];
      latency.set(name, samples);
      const before = writerMs();
      for (let i = 0; i < PER_ROUND; i++) {
        n++;
        const op = shapes[name]();
        const t0 = performance.now();
        await (typeof op === "function" ? op() : op.commit());
        samples.push(performance.now() - t0);
        if (GAP_MS > 0) await new Promise((r) => setTimeout(r, GAP_MS));
      }
      cpu.set(name, (cpu.get(name) ?? 0) + writerMs() - before);
    }
  }
  console.log(
    `KV commit by shape, ${ROUNDS * PER_ROUND} commits each, rounds alternating, ` +
      (GAP_MS > 0 ? `${GAP_MS} ms between commits` : "back to back"),
  );
  for (const name of Object.keys(shapes)) {
    const samples = latency.get(name)!;
    const s = stats(samples);
    console.log(
      `${name}: writer thread ${fmt((cpu.get(name)! * 1000) / samples.length, 0)} µs/commit, ` +
        `latency mean ${fmt(samples.reduce((a, b) => a + b, 0) / samples.length, 3)} ms, ` +
        `p50 ${fmt(s.p50, 3)} ms, p99 ${fmt(s.p99, 3)} ms`,
    );
  }
} finally {
  kv.close();
  await Deno.remove(dir, { recursive: true });
}
