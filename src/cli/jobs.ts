/**
 * `arcp jobs`: lists the jobs the token's principal may observe, oldest
 * first, following the runtime's cursors page by page.
 *
 * @module
 */
import { parseCommandArgs } from "./command_args.ts";
import { parseArgs } from "parse-args";
import { ArcpClient } from "../client/client.ts";
import type { JobListEntry, JobStatus } from "../client/payloads.ts";
import type { ListJobsRequest } from "../client/requests.ts";
import { JOB_STATUSES } from "../protocol/messages.ts";
import {
  COMMON_OPTIONS,
  CONNECTION_USAGE,
  type ConnectionSettings,
  connectionSettings,
  withClient,
} from "./connection.ts";

/** Usage text of `arcp jobs`. */
export const JOBS_USAGE = `usage: arcp jobs [options]
  --status STATUS          only jobs in this state (repeatable): ${JOB_STATUSES.join(", ")}
  --agent AGENT            only this agent (name or name@version)
  --limit N                list at most N jobs (default: all)
  --page-size N            jobs per request (default 100)
  --json                   one JSON object per job instead of a table
${CONNECTION_USAGE}`;

/** A parsed `arcp jobs` command line. */
export interface JobsArgs {
  /** Where to connect. */
  connection: ConnectionSettings;
  /** The filter. */
  filter: NonNullable<ListJobsRequest["filter"]>;
  /** The most jobs to list. */
  limit: number;
  /** Jobs per request. */
  pageSize: number;
  /** JSON lines instead of a table. */
  json: boolean;
}

/** The largest page a runtime serves. */
const MAX_PAGE = 1000;

/**
 * Parses `arcp jobs` arguments.
 *
 * @param args arguments after `jobs`
 * @param env environment lookup
 * @returns the settings, or `help`
 * @throws {TypeError} naming the bad flag
 */
export function parseJobsArgs(
  args: string[],
  env: (name: string) => string | undefined,
): JobsArgs | "help" {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      status: { type: "string", multiple: true },
      agent: { type: "string" },
      limit: { type: "string" },
      "page-size": { type: "string" },
      json: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) return "help";
  const filter: JobsArgs["filter"] = {};
  for (const status of values.status ?? []) {
    if (!(JOB_STATUSES as readonly string[]).includes(status)) {
      throw new TypeError(`--status: expected one of ${JOB_STATUSES.join(", ")}, got ${status}`);
    }
    (filter.status ??= []).push(status as JobStatus);
  }
  if (values.agent !== undefined) filter.agent = values.agent;
  return {
    connection: connectionSettings(values, env),
    filter,
    limit: count(values.limit, "--limit", Infinity),
    pageSize: Math.min(count(values["page-size"], "--page-size", 100), MAX_PAGE),
    json: values.json ?? false,
  };
}

function count(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new TypeError(`${flag}: expected a positive integer, got ${text}`);
  }
  return n;
}

/**
 * Runs `arcp jobs`.
 *
 * @param args arguments after `jobs`
 * @returns the exit code
 */
export async function jobs(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    "jobs",
    JOBS_USAGE,
    () => parseJobsArgs(args, (n) => Deno.env.get(n)),
  );
  if (typeof parsed === "number") return parsed;
  const { connection, filter, limit, pageSize, json } = parsed;
  const connect = () =>
    ArcpClient.connect(connection.url, {
      token: connection.token,
      clientName: "arcp-cli",
      features: ["list_jobs"],
    });
  return await withClient("jobs", connection.url, connect, async (client) => {
    if (!json) console.log(row(["JOB_ID", "STATUS", "CREATED_AT", "AGENT"]));
    let listed = 0;
    let cursor: string | null = null;
    do {
      const page = await client.listJobs({
        filter,
        limit: Math.min(pageSize, limit - listed),
        cursor,
      });
      for (const job of page.jobs) console.log(json ? JSON.stringify(job) : tableRow(job));
      listed += page.jobs.length;
      cursor = page.next_cursor;
    } while (cursor && listed < limit);
    return 0;
  });
}

function tableRow(job: JobListEntry): string {
  return row([job.job_id, job.status, job.created_at, job.agent]);
}

function row([id, status, created, agent]: string[]): string {
  return `${id.padEnd(30)}  ${status.padEnd(9)}  ${created.padEnd(24)}  ${agent}`;
}
