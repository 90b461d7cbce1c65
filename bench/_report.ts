/**
 * The rows a figures run collects, shared by `figures.ts` and the figure
 * modules it runs (`*_figures.ts`), so each topic's figures can live in a
 * file of their own.
 *
 * @module
 */
import { parseArgs } from "parse-args";
import type { ResultRow } from "./_util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    only: { type: "string" },
    scale: { type: "string" },
    "no-write": { type: "boolean" },
  },
  strict: false,
});

/** The flags of a figures run: `--only`, `--scale` and `--no-write`. */
export const flags: { only?: string; scale?: string; "no-write"?: boolean } = {
  only: typeof values.only === "string" ? values.only : undefined,
  scale: typeof values.scale === "string" ? values.scale : undefined,
  "no-write": values["no-write"] === true,
};

/** The `--scale` factor of this run (1 unless given). */
export const SCALE: number = Number(flags.scale ?? 1);

/**
 * A count scaled by `--scale`, never below `min`.
 *
 * @param n full-size count
 * @param min smallest count
 * @returns the count to use
 */
export function scaled(n: number, min = 1): number {
  return Math.max(min, Math.round(n * SCALE));
}

/** Every row reported so far in this run, in order. */
export const rows: ResultRow[] = [];

/**
 * Records one figure row and prints it.
 *
 * @param row the row
 */
export function report(row: ResultRow): void {
  rows.push(row);
  console.log(
    `  ${row.metric.padEnd(60)} ${row.value.padStart(12)} ${row.unit}${
      row.notes ? `  (${row.notes})` : ""
    }`,
  );
}

/**
 * Prints the heading of a figure.
 *
 * @param text the heading
 */
export function heading(text: string): void {
  console.log(`\n== ${text}`);
}
