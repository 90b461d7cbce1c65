/**
 * Which keys a reused echo job's commit writes and which SQLite pages they
 * dirty: `arcp serve` of a checkout on a KV file of its own, reused echo
 * jobs one after another on one session, and after each job the frames KV's
 * write-ahead log (`<file>-wal`) gained, grouped by commit. For the last
 * job, a copy of the file (and its log) is read through `node:sqlite`:
 * the keys its commits wrote (key and value bytes as KV stores them, its
 * expiry) and, from `dbstat`, which table or index each page they wrote
 * belongs to. Reports; asserts nothing.
 *
 * ```sh
 * deno run -A --unstable-kv bench/kv_job_pages.ts [--root <checkout>] [--jobs 200]
 * ```
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { BENCH_TOKENS, BenchClient, ROOT } from "./_util.ts";
import { spawnServe } from "../testing/server.ts";
import { FIGURE11_SERVE_FLAGS } from "./sandbox_figures.ts";
import { DatabaseSync } from "sqlite";

const { values } = parseArgs({
  args: Deno.args,
  options: { root: { type: "string" }, jobs: { type: "string" } },
});
const root = values.root ?? ROOT;
const jobs = Number(values.jobs ?? 200);

/** One commit's frames in the log: the pages it wrote. */
type Commit = number[];

/** The log's valid frames, grouped by commit (a frame with a database size ends one). */
function walCommits(path: string): { salt: string; commits: Commit[] } {
  let buf: Uint8Array;
  try {
    buf = Deno.readFileSync(path);
  } catch {
    return { salt: "", commits: [] };
  }
  if (buf.length < 32) return { salt: "", commits: [] };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const pageSize = view.getUint32(8);
  const salt = `${view.getUint32(16)}:${view.getUint32(20)}`;
  const commits: Commit[] = [];
  let pages: number[] = [];
  for (let at = 32; at + 24 + pageSize <= buf.length; at += 24 + pageSize) {
    if (`${view.getUint32(at + 8)}:${view.getUint32(at + 12)}` !== salt) break;
    pages.push(view.getUint32(at));
    if (view.getUint32(at + 4) !== 0) {
      commits.push(pages);
      pages = [];
    }
  }
  return { salt, commits };
}

/** A KV key's bytes with its separators shown, readable enough to tell the prefix. */
function show(k: Uint8Array): string {
  return Array.from(k, (b) => b === 0 ? "|" : b < 32 || b > 126 ? "." : String.fromCharCode(b))
    .join("");
}

/**
 * Prints which table or index each page belongs to, and the keys of the
 * newest commits (KV gives a commit's keys its version).
 */
function describe(path: string, commits: Commit[]): void {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const owner = new Map<number, string>();
    for (const r of db.prepare("SELECT name, pageno, pagetype FROM dbstat").all()) {
      owner.set(Number(r.pageno), `${r.name} ${r.pagetype}`);
    }
    commits.forEach((pages, i) => {
      console.log(`commit ${i + 1}: ${pages.length} pages`);
      const counts = new Map<string, number>();
      for (const p of pages) {
        const o = owner.get(p) ?? "?";
        counts.set(o, (counts.get(o) ?? 0) + 1);
      }
      for (const [o, n] of counts) console.log(`  ${n} × ${o}`);
    });
    const versions = db.prepare("SELECT DISTINCT version FROM kv ORDER BY version DESC LIMIT ?")
      .all(commits.length).map((r: Record<string, unknown>) => Number(r.version));
    const rows = db.prepare(
      "SELECT k, length(k) AS kb, length(v) AS vb, version, expiration_ms FROM kv WHERE version >= ? ORDER BY version, k",
    ).all(versions.at(-1) ?? 0);
    console.log("keys written by them: key bytes, value bytes, version, expiry ms, key");
    for (const r of rows) {
      console.log(
        `  ${r.kb}\t${r.vb}\t${r.version}\t${r.expiration_ms}\t${show(r.k as Uint8Array)}`,
      );
    }
  } finally {
    db.close();
  }
}

const dir = await Deno.makeTempDir({ prefix: "arcp_kv_pages_" });
const kvPath = `${dir}/arcp.kv`;
const server = await spawnServe(
  [
    "--port",
    "0",
    "--kv",
    kvPath,
    ...Object.entries(BENCH_TOKENS).flatMap(([t, p]) => ["--token", `${t}=${p}`]),
    ...FIGURE11_SERVE_FLAGS,
  ],
  {},
  undefined,
  root,
);
try {
  const client = await BenchClient.connect(server.url);
  for (let i = 0; i < 50; i++) await client.run("echo-reused", { i });
  await new Promise((r) => setTimeout(r, 300));
  const perJob: { commits: number; frames: number; pages: number[][] }[] = [];
  for (let i = 0; i < jobs; i++) {
    const before = walCommits(`${kvPath}-wal`);
    await client.run("echo-reused", { i });
    // Let whatever rides after the terminal (acks, session record) commit too.
    await new Promise((r) => setTimeout(r, 30));
    const after = walCommits(`${kvPath}-wal`);
    const added = after.salt === before.salt
      ? after.commits.slice(before.commits.length)
      : after.commits;
    perJob.push({
      commits: added.length,
      frames: added.reduce((n, c) => n + c.length, 0),
      pages: added,
    });
  }
  const frames = perJob.map((j) => j.frames).sort((a, b) => a - b);
  const commits = perJob.map((j) => j.commits).sort((a, b) => a - b);
  console.log(
    `${jobs} jobs: commits per job p50 ${commits[jobs >> 1]} (min ${commits[0]}, max ${
      commits.at(-1)
    }); WAL frames per job p50 ${frames[jobs >> 1]} (min ${frames[0]}, max ${
      frames.at(-1)
    }), mean ${(frames.reduce((a, b) => a + b, 0) / jobs).toFixed(2)}; frames per commit ${
      (frames.reduce((a, b) => a + b, 0) / commits.reduce((a, b) => a + b, 0)).toFixed(2)
    }`,
  );
  const last = perJob.at(-1)!;
  const copy = `${dir}/copy.kv`;
  Deno.copyFileSync(kvPath, copy);
  Deno.copyFileSync(`${kvPath}-wal`, `${copy}-wal`);
  describe(copy, last.pages);
  client.ws.close();
} finally {
  await server.stop();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
