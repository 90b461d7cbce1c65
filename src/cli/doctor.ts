/**
 * `arcp doctor`: examines a KV file and lists what is damaged, without
 * changing it; safe to run beside a runtime that has the store open.
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { examineStore, type StoreProblem } from "../runtime.ts";
import { parseCommandArgs } from "./command_args.ts";

/** Usage text of `arcp doctor`. */
export const DOCTOR_USAGE = `usage: arcp doctor [options]
  --kv PATH                KV file to examine (env ARCP_KV, default ./data/arcp.kv)
  --max-lines N            list at most N problems (default 1000; the count covers all)
Reads the store without changing it and lists damaged entries: ones SQLite cannot read, values
that do not decode or do not have their record's shape, values split across keys with a part
missing, holes in session logs and job histories, index entries naming a job that has no record.
Exit 0 when nothing is wrong, 1 when something is, 2 when there is no store to examine.`;

/** A parsed `arcp doctor` command line. */
export interface DoctorArgs {
  /** The KV file. */
  kvPath: string;
  /** Problems listed at most. */
  maxLines: number;
}

/**
 * Parses `arcp doctor` arguments.
 *
 * @param args arguments after `doctor`
 * @param env environment lookup
 * @returns the settings, or `help`
 * @throws {TypeError} naming the bad flag
 */
export function parseDoctorArgs(
  args: string[],
  env: (name: string) => string | undefined,
): DoctorArgs | "help" {
  const { values } = parseArgs({
    args,
    options: {
      kv: { type: "string" },
      "max-lines": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) return "help";
  const maxLines = values["max-lines"] === undefined ? 1000 : Number(values["max-lines"]);
  if (!Number.isInteger(maxLines) || maxLines < 1) {
    throw new TypeError(`--max-lines: expected a positive integer, got ${values["max-lines"]}`);
  }
  return { kvPath: values.kv ?? env("ARCP_KV") ?? "./data/arcp.kv", maxLines };
}

/**
 * Runs `arcp doctor`.
 *
 * @param args arguments after `doctor`
 * @returns the exit code: 0 clean, 1 damaged, 2 bad flags or no store
 */
export function doctor(args: string[]): number {
  const parsed = parseCommandArgs(
    "doctor",
    DOCTOR_USAGE,
    () => parseDoctorArgs(args, (n) => Deno.env.get(n)),
  );
  if (typeof parsed === "number") return parsed;
  const { kvPath, maxLines } = parsed;
  let report;
  try {
    report = examineStore(kvPath);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    console.error(`arcp doctor: no KV store at ${kvPath}`);
    return 2;
  }
  const problems: StoreProblem[] = [
    ...report.sqlite.map((line) => ({ where: "(sqlite)", problem: line })),
    ...report.problems,
  ];
  const entries = `${report.entries.toLocaleString("en-US")} entries read`;
  if (problems.length === 0) {
    console.log(`arcp doctor: ${kvPath}: no damage found (${entries}; SQLite integrity check ok)`);
    return 0;
  }
  console.log(`arcp doctor: ${kvPath}: damaged`);
  for (const { where, problem } of problems.slice(0, maxLines)) {
    console.log(`  ${where}  ${problem}`);
  }
  if (problems.length > maxLines) {
    console.log(`  … and ${problems.length - maxLines} more`);
  }
  console.log(`${problems.length} problems; ${entries}`);
  return 1;
}
