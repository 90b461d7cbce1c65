/**
 * What a spare worker is charged against the spares' memory budget: what
 * its sandbox process's own resident set shows it costs, including memory
 * its agent's module takes after the spare was readied. Real sandbox
 * processes, spawned as the launcher spawns them.
 *
 * @module
 */
import { ok } from "assert";
import { ROOT } from "../../testing/server.ts";
import { LoneProcesses, until } from "../../testing/sandbox_process.ts";
import { SPARE_WORKER_MB } from "../../src/sandbox/memory_ceiling.ts";
import { TABLE_BYTES } from "../fixtures/spare_cost/late_table.ts";

const LATE_TABLE = new URL("../fixtures/spare_cost/late_table.ts", import.meta.url).href;
const ECHO = new URL("../../agents/echo/v1.ts", import.meta.url).href;
const MiB = 1024 * 1024;

/**
 * A lone sandbox process of `agent` holding two spares. Spares are measured
 * from a sample taken once the worker had been up for two sampling periods;
 * asked sooner, the process measures nothing.
 */
async function twoSpares(lone: LoneProcesses, agent: string) {
  const proc = await lone.start(agent);
  await new Promise((r) => setTimeout(r, 500));
  proc.spare(2);
  await until(() => proc.spares === 2, 60_000, "two spares");
  return proc;
}

Deno.test("a spare whose agent fills a table after it was readied is charged for the table", async () => {
  await using lone = await LoneProcesses.create(ROOT, [LATE_TABLE]);
  const proc = await twoSpares(lone, LATE_TABLE);
  await until(
    () => (proc.spareBytes ?? 0) >= TABLE_BYTES,
    30_000,
    `each spare charged its ${TABLE_BYTES / MiB} MiB table (charged ${
      (proc.spareBytes ?? 0) / MiB
    } MiB)`,
  );
});

Deno.test("an echo spare is charged at least the floor, and no more than a table spare", async () => {
  await using lone = await LoneProcesses.create(ROOT, [ECHO]);
  const proc = await twoSpares(lone, ECHO);
  await until(() => proc.spareBytes !== undefined, 30_000, "a measure of the spares");
  const charged = proc.spareBytes!;
  ok(charged >= SPARE_WORKER_MB * MiB, `charged ${charged / MiB} MiB`);
  ok(charged < TABLE_BYTES, `an echo spare charged ${charged / MiB} MiB`);
});
