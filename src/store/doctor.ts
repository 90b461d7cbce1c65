/**
 * `arcp doctor`'s examination of a KV file, read-only: SQLite's own
 * integrity check, then every entry in key order against what the runtime
 * writes there. It finds entries that cannot be read, values that do not
 * have their record's shape or do not decode, values stored in parts with a
 * part missing, holes in session logs and job histories, and index entries
 * naming a job that has no record. Log entries appended in one commit share
 * one value, kept at the key of the last of them (`large_value.ts`): each is
 * checked as an entry of its own.
 *
 * @module
 */
import { z } from "zod";
import { JobStatusSchema, TERMINAL_STATUSES } from "../protocol/messages.ts";
import type { StoreDamageError } from "./damage.ts";
import { V } from "./keys.ts";
import { type FileEntry, formatKey, KvFile } from "./kv_file.ts";
import { TextAssembler } from "./large_value.ts";

/** One thing wrong with the store. */
export interface StoreProblem {
  /** The key it is at (`["v1","job","job_…"]`), or the stretch of keys, or `(file)`. */
  where: string;
  /** What is wrong. */
  problem: string;
}

/** What {@linkcode examineStore} found. */
export interface StoreReport {
  /** The KV file. */
  path: string;
  /** Entries read (past their expiry ones are left out, as KV does). */
  entries: number;
  /** SQLite's integrity check, one line per problem. */
  sqlite: string[];
  /** Everything else wrong, in key order. */
  problems: StoreProblem[];
}

/**
 * Examines a KV file without changing it.
 *
 * @param path the KV file
 * @returns what is wrong with it; nothing when `sqlite` and `problems` are empty
 * @throws {Deno.errors.NotFound} when there is no file at `path`
 * @example
 * ```ts ignore
 * import { examineStore } from "./doctor.ts";
 * const report = examineStore("./data/arcp.kv");
 * for (const p of report.problems) console.log(p.where, p.problem);
 * ```
 */
export function examineStore(path: string): StoreReport {
  // An empty file is a store nothing was written to yet (SQLite makes it a database on first use).
  if (Deno.statSync(path).size === 0) return { path, entries: 0, sqlite: [], problems: [] };
  let file: KvFile;
  try {
    file = KvFile.open(path);
  } catch (err) {
    return {
      path,
      entries: 0,
      sqlite: [],
      problems: [{
        where: "(file)",
        problem: (err as StoreDamageError).message.replace(/^storage: /, ""),
      }],
    };
  }
  try {
    const sqlite = file.integrity();
    const examiner = new Examiner();
    for (const item of file.walk()) {
      if ("entry" in item) examiner.entry(item.entry);
      else {
        const { key, after, before, problem } = item.damage;
        const where = key ?? `${after ?? "(start)"} … ${before ?? "(end)"}`;
        examiner.problem(where, problem);
      }
    }
    return { path, entries: examiner.entries, sqlite, problems: examiner.finish() };
  } finally {
    file.close();
  }
}

// ---- the shapes of stored records -------------------------------------------
// Loose on purpose: a field added later is no damage; one the runtime relies on
// that is missing or of the wrong type is.

const seq = z.number().int().nonnegative();

const JobRecordShape = z.looseObject({
  job_id: z.string(),
  principal: z.string(),
  session_id: z.string(),
  agent: z.string(),
  status: JobStatusSchema,
  lease: z.record(z.string(), z.array(z.string())),
  trace_id: z.string(),
  created_at: z.string(),
  created_ms: z.number(),
  accepted_at: z.string(),
  ended_at: z.string().optional(),
  last_event_seq: seq,
  log_length: seq,
});

/**
 * A terminal index entry: the listed fields of a job (`listedJob`); a store
 * written before entries were trimmed holds whole records, which pass too.
 */
const ListedJobShape = JobRecordShape.omit({
  session_id: true,
  accepted_at: true,
  log_length: true,
});

/** A live job's index entry (`LiveEntry`). */
const LiveEntryShape = z.looseObject({ session_id: z.string(), agent: z.string() });

const SessionRecordShape = z.looseObject({
  session_id: z.string(),
  principal: z.string(),
  created_at: z.string(),
  last_seq: seq,
  acked_seq: seq,
  floor_seq: seq,
  resume_token_hash: z.string(),
  features: z.array(z.string()),
  detached_at: z.number().optional(),
  pending_accepted: z.array(z.string()).optional(),
});

const IdempotencyShape = z.looseObject({
  job_id: z.string(),
  params_hash: z.string(),
  expires_at: z.number().optional(),
});

const AuditShape = z.looseObject({
  id: z.string(),
  at: z.number(),
  subscriber_principal: z.string(),
  subscriber_session: z.string(),
  job_id: z.string(),
  decision: z.string(),
});

const NodeShape = z.looseObject({
  node_id: z.string(),
  run: z.string(),
  host: z.string(),
  pid: z.number(),
  started_at: z.number(),
  lease_until: z.number(),
});

const RevocationShape = z.looseObject({
  job_id: z.string(),
  credential_id: z.string(),
  provisioner: z.string(),
  handle: z.string(),
  attempts: seq,
  next_at: z.number(),
});

/** The first thing wrong with a value, or undefined when it has the shape. */
function shapeProblem(schema: z.ZodType, value: unknown, what: string): string | undefined {
  const parsed = schema.safeParse(value);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0];
  const path = issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
  return `not a ${what}: ${path}${issue.message}`;
}

// ---- the examination ----------------------------------------------------------

/** What one log (a session's, or a job's history) held. */
interface LogSummary {
  /** `["v1","slog","sess_…"]`. */
  where: string;
  /** First and last entry present. */
  first: number;
  last: number;
  /** Stretches missing between present entries. */
  holes: Array<[number, number]>;
}

/** A job as the cross-checks need it. */
interface JobFacts {
  terminal: boolean;
  logLength: number;
}

/** An entry that names a job. */
interface JobRef {
  where: string;
  jobId: string;
  what: string;
}

/** Reads entries in key order and, at the end, checks them against one another. */
class Examiner {
  entries = 0;
  #problems: StoreProblem[] = [];
  #jobs = new Map<string, JobFacts>();
  #sessions = new Map<string, { lastSeq: number; ackedSeq: number }>();
  #swept = new Set<string>();
  #refs: JobRef[] = [];
  #live = new Set<string>();
  #listed = new Set<string>();
  /** Jobs in the agent index (stores with the status and agent indexes). */
  #byAgent = new Set<string>();
  #layoutSeen = false;
  #sessionLogs = new Map<string, LogSummary>();
  #jobLogs = new Map<string, LogSummary>();
  #log:
    | { family: string; id: string; assembler: TextAssembler; summary?: LogSummary }
    | undefined;

  problem(where: string, problem: string): void {
    this.#problems.push({ where, problem });
  }

  entry({ key, value }: FileEntry): void {
    this.entries++;
    const where = formatKey(key);
    const [version, family, id] = key;
    if (version !== V) return this.problem(where, "not a key this runtime writes");
    const isLog = family === "slog" || family === "jlog";
    if (!isLog || this.#log?.family !== family || this.#log.id !== id) this.#endLog();
    const shape = (n: number, ...types: string[]) =>
      key.length === n && types.every((t, i) => typeof key[i + 2] === t);
    switch (family) {
      case "job":
        if (!shape(3, "string")) break;
        return this.#job(where, id as string, value);
      case "pjob":
        // The list index of stores written before the status and agent indexes.
        if (!shape(5, "string", "number", "string")) break;
        return this.#listedJob(where, key, value);
      case "pjs":
        if (!shape(6, "string", "string", "number", "string")) break;
        return this.#indexedJob(where, key[5] as string, key[3] as string, value, this.#listed);
      case "pja":
        if (!shape(7, "string", "string", "string", "number", "string")) break;
        return this.#indexedJob(where, key[6] as string, key[4] as string, value, this.#byAgent);
      case "kept":
        if (!shape(4, "number", "string")) break;
        this.#refs.push({ where, jobId: key[3] as string, what: "kept-jobs index entry" });
        return;
      case "probe":
      case "reqs":
        if (key.length !== 2) break;
        return;
      case "meta":
        if (!shape(3, "string")) break;
        if (id === "layout") this.#layoutSeen = true;
        return;
      case "plive":
        if (!shape(5, "string", "number", "string")) break;
        return this.#liveEntry(where, key[4] as string, value);
      case "live":
        // The live-jobs index of stores written before layout 3.
        if (!shape(3, "string")) break;
        this.#live.add(id as string);
        return this.#ref(where, id as string, value, "live-jobs index entry");
      case "ended":
        if (!shape(4, "number", "string")) break;
        return this.#ref(where, key[3] as string, value, "ended-jobs index entry");
      case "sess":
        if (!shape(3, "string")) break;
        return this.#session(where, id as string, value);
      case "slog":
      case "jlog":
        if (!shape(4, "string", "number") && !shape(5, "string", "number", "number")) break;
        return this.#logEntry(family, id as string, key, value);
      case "idem":
        if (!shape(4, "string", "string")) break;
        return this.#record(where, value, IdempotencyShape, "idempotency record", "job_id");
      case "revoke":
        if (!shape(4, "string", "string")) break;
        // Issued before its job is created: a refused submit leaves one naming no job.
        return this.#record(where, value, RevocationShape, "revocation record");
      case "audit":
        if (!shape(4, "number", "string")) break;
        return this.#record(where, value, AuditShape, "audit record");
      case "rtlog":
        // The runtime's own event log: operator history, nothing else refers to it.
        if (!shape(3, "number")) break;
        return;
      case "swept":
        if (!shape(3, "string")) break;
        this.#swept.add(id as string);
        return;
      case "node":
        if (!shape(3, "string")) break;
        return this.#record(where, value, NodeShape, "node record");
      case "cxl":
      case "hand":
        // Requests between nodes; a stale one lapses with its TTL.
        if (!shape(3, "string")) break;
        return;
      case "gate":
        if (!shape(3, "string")) break;
        return;
      default:
        return this.problem(where, "not a key this runtime writes");
    }
    this.problem(where, "a key of an unexpected shape");
  }

  #job(where: string, id: string, value: unknown): void {
    const wrong = shapeProblem(JobRecordShape, value, "job record");
    if (wrong) return this.problem(where, wrong);
    const job = value as z.output<typeof JobRecordShape>;
    if (job.job_id !== id) return this.problem(where, `holds the record of job ${job.job_id}`);
    this.#jobs.set(id, { terminal: TERMINAL_STATUSES.has(job.status), logLength: job.log_length });
  }

  #listedJob(where: string, key: Deno.KvKey, value: unknown): void {
    const wrong = shapeProblem(JobRecordShape, value, "job record");
    if (wrong) return this.problem(where, wrong);
    const job = value as z.output<typeof JobRecordShape>;
    const [, , principal, createdMs, jobId] = key;
    if (job.job_id !== jobId || job.principal !== principal || job.created_ms !== createdMs) {
      return this.problem(
        where,
        `holds job ${job.job_id} of ${job.principal}, not the one its key names`,
      );
    }
    this.#listed.add(jobId as string);
    this.#refs.push({ where, jobId: jobId as string, what: "principal's job list entry" });
  }

  /**
   * An entry of the status or agent index: no value in the `live` bucket (the
   * record is read), the job's listed fields in a terminal one, or none in a
   * terminal agent entry since layout 4 (the status entry is read).
   */
  #indexedJob(
    where: string,
    jobId: string,
    bucket: string,
    value: unknown,
    seen: Set<string>,
  ): void {
    if (bucket !== "live" && !(seen === this.#byAgent && value === null)) {
      const wrong = shapeProblem(ListedJobShape, value, "listed job");
      if (wrong) return this.problem(where, wrong);
      const job = value as z.output<typeof ListedJobShape>;
      if (job.job_id !== jobId || job.status !== bucket) {
        return this.problem(
          where,
          `holds job ${job.job_id} (${job.status}), not the one its key names`,
        );
      }
    }
    seen.add(jobId);
    this.#refs.push({ where, jobId, what: "principal's job list entry" });
  }

  /** A live job's one index entry: the live-jobs index and both list_jobs indexes at once. */
  #liveEntry(where: string, jobId: string, value: unknown): void {
    const wrong = shapeProblem(LiveEntryShape, value, "live-jobs index entry");
    if (wrong) return this.problem(where, wrong);
    this.#live.add(jobId);
    this.#listed.add(jobId);
    this.#byAgent.add(jobId);
    this.#refs.push({ where, jobId, what: "live-jobs index entry" });
  }

  #ref(where: string, jobId: string, value: unknown, what: string): void {
    if (typeof value !== "string") return this.problem(where, `not a ${what}: not a session id`);
    this.#refs.push({ where, jobId, what });
  }

  #session(where: string, id: string, value: unknown): void {
    const wrong = shapeProblem(SessionRecordShape, value, "session record");
    if (wrong) return this.problem(where, wrong);
    const session = value as z.output<typeof SessionRecordShape>;
    if (session.session_id !== id) {
      return this.problem(where, `holds the record of session ${session.session_id}`);
    }
    this.#sessions.set(id, { lastSeq: session.last_seq, ackedSeq: session.acked_seq });
  }

  #record(where: string, value: unknown, schema: z.ZodType, what: string, jobField?: string): void {
    const wrong = shapeProblem(schema, value, what);
    if (wrong) return this.problem(where, wrong);
    if (jobField) {
      this.#refs.push({ where, jobId: (value as Record<string, string>)[jobField], what });
    }
  }

  #logEntry(family: string, id: string, key: Deno.KvKey, value: unknown): void {
    if (!this.#log) {
      const what = family === "slog" ? `the session log of ${id}` : `the history of job ${id}`;
      const assembler = new TextAssembler(what, (e) => this.#partProblem(family, id, e));
      this.#log = { family, id, assembler };
    }
    // One value may hold several entries (appended in one commit): each is checked.
    for (const [n, text] of this.#log.assembler.add(key.slice(3), value)) {
      this.#logText(family, id, n, text);
    }
  }

  /** One whole entry of the log being read: an envelope of this log, where the summary expects it. */
  #logText(family: string, id: string, n: number, text: string): void {
    const where = formatKey([V, family, id, n]);
    let envelope: Record<string, unknown> | undefined;
    try {
      envelope = JSON.parse(text);
    } catch {
      // reported below
    }
    const owner = family === "slog" ? envelope?.session_id : envelope?.job_id;
    if (typeof envelope !== "object" || envelope === null || owner !== id) {
      this.problem(where, "not an envelope of this log");
    } else if (family === "slog" && envelope.event_seq !== n) {
      this.problem(where, `holds event_seq ${envelope.event_seq}, not ${n}`);
    }
    const log = this.#log!;
    if (!log.summary) {
      log.summary = { where: formatKey([V, family, id]), first: n, last: n, holes: [] };
    } else {
      if (n > log.summary.last + 1) log.summary.holes.push([log.summary.last + 1, n - 1]);
      log.summary.last = n;
    }
  }

  #partProblem(family: string, id: string, error: StoreDamageError): void {
    const entry = (error.details as { entry?: number } | undefined)?.entry;
    const key = entry === undefined ? [V, family, id] : [V, family, id, entry];
    this.problem(formatKey(key), error.message.replace(/^storage: /, ""));
  }

  #endLog(): void {
    const log = this.#log;
    if (!log) return;
    this.#log = undefined;
    log.assembler.end();
    if (!log.summary) return;
    (log.family === "slog" ? this.#sessionLogs : this.#jobLogs).set(log.id, log.summary);
  }

  /** The cross-checks, once every entry is read. */
  finish(): StoreProblem[] {
    this.#endLog();
    const missing = (where: string, from: number, to: number, what: string) =>
      this.problem(where, `${from === to ? `entry ${from}` : `entries ${from}–${to}`} ${what}`);
    for (const [id, log] of this.#sessionLogs) {
      const session = this.#sessions.get(id);
      for (const [from, to] of log.holes) missing(log.where, from, to, "missing");
      if (!session) {
        if (!this.#swept.has(id)) this.problem(log.where, "the log of a session with no record");
        continue;
      }
      // Entries go in seq order and expire in that order: the newest must be there. Entries
      // past the record's last_seq are not damage: the record is not rewritten for each one.
      if (log.last < session.lastSeq && session.ackedSeq < session.lastSeq) {
        missing(log.where, Math.max(log.last, session.ackedSeq) + 1, session.lastSeq, "missing");
      }
    }
    for (const [id, log] of this.#jobLogs) {
      const job = this.#jobs.get(id);
      for (const [from, to] of log.holes) missing(log.where, from, to, "missing");
      if (!job) {
        this.problem(log.where, "the history of a job with no record");
        continue;
      }
      // A history is swept from its start, never from its end.
      if (log.last > job.logLength - 1) {
        missing(log.where, job.logLength, log.last, "beyond the job's log_length");
      } else if (log.last < job.logLength - 1) {
        missing(log.where, log.last + 1, job.logLength - 1, "missing");
      }
      if (!job.terminal && log.first > 0) missing(log.where, 0, log.first - 1, "missing");
    }
    for (const ref of this.#refs) {
      const job = this.#jobs.get(ref.jobId);
      if (!job) {
        this.problem(ref.where, `a ${ref.what} naming job ${ref.jobId}, which has no record`);
      } else if (ref.what === "live-jobs index entry" && job.terminal) {
        this.problem(ref.where, `names job ${ref.jobId} as live, but it has ended`);
      }
    }
    for (const [id, job] of this.#jobs) {
      const where = formatKey([V, "job", id]);
      // A live job's history is never swept.
      if (!job.terminal && job.logLength > 0 && !this.#jobLogs.has(id)) {
        missing(formatKey([V, "jlog", id]), 0, job.logLength - 1, "missing");
      }
      if (!job.terminal && !this.#live.has(id)) {
        this.problem(where, "a live job missing from the live-jobs index");
      }
      if (!this.#listed.has(id)) this.problem(where, "missing from its principal's job list");
      if (this.#layoutSeen && !this.#byAgent.has(id)) {
        this.problem(where, "missing from its principal's agent index");
      }
    }
    return this.#problems;
  }
}
