/**
 * `arcp status`: the runtime's summary and the nodes sharing its KV, read
 * from the management API (`GET /v1/runtime`) with the token of `--token`
 * or `ARCP_TOKEN`.
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { parseCommandArgs } from "./command_args.ts";
import {
  COMMON_OPTIONS,
  CONNECTION_USAGE,
  type ConnectionSettings,
  connectionSettings,
} from "./connection.ts";

/** Usage text of `arcp status`. */
export const STATUS_USAGE = `usage: arcp status [options]
  --json                   the summary as JSON, as GET /v1/runtime returns it
${CONNECTION_USAGE}`;

/** The part of `GET /v1/runtime` this command prints. */
interface RuntimeSummary {
  name: string;
  version: string;
  started_at: string;
  uptime_sec: number;
  sessions: { live: number; held?: number };
  jobs: { by_status: Record<string, number>; live: number };
  sandbox: { mode: string; hosts: Array<{ pid: number; rss_bytes?: number; jobs: number }> };
  drain: { state: string; deadline?: string };
  storage?: { ok: boolean; error?: string };
  node_id?: string;
  nodes?: Array<{
    node_id: string;
    url?: string;
    age_ms: number;
    live_jobs: number;
    lease_expires_at: string;
    alive: boolean;
    self: boolean;
  }>;
}

/**
 * The management API's base URL for a runtime endpoint.
 *
 * @param url the WebSocket endpoint (`ws://host:port/arcp`), or an http(s) URL
 * @returns `http(s)://host:port`
 * @throws {TypeError} when it is not a URL
 * @example
 * ```ts
 * import { apiBase } from "./status.ts";
 * apiBase("wss://arcp.example:443/arcp"); // "https://arcp.example"
 * ```
 */
export function apiBase(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`--url: not a URL: ${url}`);
  }
  const protocol = u.protocol === "wss:" || u.protocol === "https:" ? "https:" : "http:";
  return `${protocol}//${u.host}`;
}

/**
 * The summary as lines for a terminal.
 *
 * @param s the summary
 * @returns the lines
 */
export function formatStatus(s: RuntimeSummary): string[] {
  const counts = Object.entries(s.jobs.by_status).filter(([, n]) => n > 0)
    .map(([status, n]) => `${status} ${n}`).join(", ");
  const hosts = s.sandbox.hosts.length === 0 ? "" : `, ${s.sandbox.hosts.length} sandbox processes`;
  const lines = [
    `${s.name} ${s.version}, up ${duration(s.uptime_sec)} (since ${s.started_at})`,
    `state:    ${s.drain.state}${s.drain.deadline ? ` (deadline ${s.drain.deadline})` : ""}`,
    `sessions: ${s.sessions.live} attached${
      s.sessions.held === undefined ? "" : `, ${s.sessions.held} held`
    }`,
    `jobs:     ${s.jobs.live} live${counts ? `; since start: ${counts}` : ""}`,
    `sandbox:  ${s.sandbox.mode}${hosts}`,
  ];
  if (s.storage && !s.storage.ok) lines.push(`storage:  FAILING: ${s.storage.error}`);
  if (s.nodes?.length) {
    lines.push(`nodes:    ${s.nodes.length} on this KV (this one: ${s.node_id})`);
    for (const n of s.nodes) {
      lines.push(
        `  ${n.node_id}  ${n.url ?? "(no URL)"}  up ${duration(Math.floor(n.age_ms / 1000))}, ` +
          `${n.live_jobs} live jobs, lease until ${n.lease_expires_at}` +
          (n.self ? " (this node)" : n.alive ? "" : " DEAD: its jobs are being ended"),
      );
    }
  }
  return lines;
}

function duration(sec: number): string {
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${sec % 60}s`;
  return `${Math.floor(sec / 3600)}h${Math.floor((sec % 3600) / 60)}m`;
}

/**
 * Runs `arcp status`.
 *
 * @param args arguments after `status`
 * @returns the exit code
 */
export async function status(args: string[]): Promise<number> {
  const parsed = parseCommandArgs("status", STATUS_USAGE, () => {
    const { values } = parseArgs({
      args,
      options: { ...COMMON_OPTIONS, json: { type: "boolean" } },
      strict: true,
    });
    if (values.help) return "help";
    return {
      connection: connectionSettings(values, (n) => Deno.env.get(n)),
      json: values.json ?? false,
    };
  });
  if (typeof parsed === "number") return parsed;
  return await printStatus(parsed.connection, parsed.json);
}

async function printStatus(connection: ConnectionSettings, json: boolean): Promise<number> {
  let base: string;
  try {
    base = apiBase(connection.url);
  } catch (err) {
    console.error(`arcp status: ${(err as Error).message}`);
    return 2;
  }
  let res: Response;
  try {
    res = await fetch(`${base}/v1/runtime`, {
      headers: { authorization: `Bearer ${connection.token}` },
    });
  } catch {
    console.error(
      `arcp status: no runtime answers at ${base}; start one with \`arcp serve\` or pass --url`,
    );
    return 1;
  }
  const body = await res.json().catch(() => undefined);
  if (!res.ok) {
    const e = body?.error;
    console.error(
      `arcp status: ${
        e ? `${e.code}: ${e.message}` : `HTTP ${res.status} from ${base}/v1/runtime`
      }`,
    );
    return 1;
  }
  if (json) console.log(JSON.stringify(body, null, 2));
  else for (const line of formatStatus(body as RuntimeSummary)) console.log(line);
  return 0;
}
