/**
 * The list_jobs indexes and the listing that reads them.
 *
 * Every index is ordered by (creation time, job id) within its prefix. A
 * pending or running job has one entry, `[plive, principal, …]`, whose value
 * names its session and bare agent name: it is the index of live jobs for
 * listings, for the restart's reconciliation and for the cross-node cap
 * count at once (a principal's live jobs are bounded by its cap, so an agent
 * filter is applied to these entries as they are read). A finished job has
 * two, by terminal status (`[pjs, principal, status, …]`) and by agent and
 * terminal status (`[pja, principal, agent, status, …]`). A listing reads
 * only the buckets its filter can match, from the cursor on, and merges
 * them, so its cost follows the page size and not the number of jobs the
 * principal has.
 *
 * The live entry is written once, with the new record, and deleted once,
 * with the terminal; the events between rewrite the record alone (the
 * listing reads it). A status entry carries what a listing shows of the
 * final record ({@linkcode listedJob}), so finished jobs, the bulk of any
 * store, list in one range read; an agent entry (since layout 4) carries
 * nothing, and a listing by agent reads the status entries it points at,
 * a page's worth at once (entries of earlier layouts keep their copy and are read as
 * they are). A job thus costs one index write when it is
 * accepted and four when it ends (the live entry's delete, both terminal
 * entries and the retention index's). A job whose held record first
 * commits with its terminal (a short job started early) never had a live
 * entry: its one commit writes the three terminal entries alone.
 *
 * @module
 */
import { keys } from "./keys.ts";
import { type KvWrite, kvWrite } from "./large_value.ts";
import type { JobRecord } from "./records.ts";
import { JOB_STATUSES, type JobStatus, TERMINAL_STATUSES } from "../protocol/messages.ts";

/** A position in a listing: the creation time and id of a job. */
export interface JobPosition {
  /** Creation time (epoch ms). */
  createdMs: number;
  /** Job id. */
  jobId: string;
}

/** Filters of a job listing. */
export interface JobQuery {
  /** Only these states. */
  statuses?: readonly JobStatus[];
  /** Bare name or `name@version`. */
  agent?: string;
  /** Created strictly after (epoch ms). */
  createdAfterMs?: number;
  /** Created strictly before (epoch ms). */
  createdBeforeMs?: number;
  /** Resume after this position (exclusive; with `newestFirst`, the jobs older than it). */
  after?: JobPosition;
  /** At most this many. */
  limit: number;
  /** Newest first (the management API's order) instead of oldest first. */
  newestFirst?: boolean;
}

/**
 * What a listing shows of a job: its record less what only running it
 * needs (its session, history length, node, idempotency key and limits).
 */
export type ListedJob =
  & Pick<
    JobRecord,
    | "job_id"
    | "principal"
    | "agent"
    | "status"
    | "lease"
    | "trace_id"
    | "created_at"
    | "created_ms"
    | "last_event_seq"
  >
  & Partial<
    Pick<JobRecord, "ended_at" | "parent_job_id" | "budget" | "budget_remaining" | "error">
  >;

/**
 * What a terminal index entry keeps of a job: a listing's fields, so a
 * finished job (written twice, by status and by agent) is not stored three
 * times whole.
 *
 * @param job the record
 * @returns its listed fields
 */
export function listedJob(job: JobRecord): ListedJob {
  const listed: ListedJob = {
    job_id: job.job_id,
    principal: job.principal,
    agent: job.agent,
    status: job.status,
    lease: job.lease,
    trace_id: job.trace_id,
    created_at: job.created_at,
    created_ms: job.created_ms,
    last_event_seq: job.last_event_seq,
  };
  if (job.ended_at !== undefined) listed.ended_at = job.ended_at;
  if (job.parent_job_id !== undefined) listed.parent_job_id = job.parent_job_id;
  if (job.budget !== undefined) listed.budget = job.budget;
  if (job.budget_remaining !== undefined) listed.budget_remaining = job.budget_remaining;
  if (job.error !== undefined) listed.error = job.error;
  return listed;
}

/** One page of jobs. */
export interface JobPage {
  /**
   * The jobs, in (creation time, id) order, or its reverse with
   * `newestFirst`: live ones as their records, finished ones as listed.
   */
  jobs: ListedJob[];
  /** Position of the last job when more may follow. */
  next?: JobPosition;
}

/** The bucket of live jobs. */
const LIVE = "live";

/** The value of a live job's index entry. */
export interface LiveEntry {
  /** The job's session. */
  session_id: string;
  /** The job's bare agent name (what an agent filter matches). */
  agent: string;
}

/** Keys KV reads at once with `getMany`. */
const GET_MANY = 10;

/**
 * The index bucket of a status: `"live"` or the terminal status.
 *
 * @param status the job's status
 * @returns its bucket
 */
export function bucketOf(status: JobStatus): string {
  return TERMINAL_STATUSES.has(status) ? status : LIVE;
}

/**
 * The agent's bare name, as the agent index keys it.
 *
 * @param agent `name@version` or `name`
 * @returns `name`
 */
export function bareAgent(agent: string): string {
  const at = agent.indexOf("@");
  return at < 0 ? agent : agent.slice(0, at);
}

/**
 * When a terminal job ended, for retention: its `ended_at`, else its
 * creation time (a record without `ended_at` predates that field).
 *
 * @param job a terminal job's record
 * @returns epoch ms
 */
export function endedMsOf(job: JobRecord): number {
  const ms = job.ended_at === undefined ? NaN : Date.parse(job.ended_at);
  return Number.isFinite(ms) ? ms : job.created_ms;
}

/**
 * The index writes that go with writing a job record.
 *
 * @param job the record being written
 * @param first no commit before this one wrote the job (a held record
 *   committed with its terminal): its live entry was never stored
 * @returns for a live job its live entry; for a terminal one the live
 *   entry's delete (unless `first`), its status and agent entries and its
 *   entry in the retention index
 */
export function jobIndexWrites(job: JobRecord, first = false): KvWrite[] {
  if (!TERMINAL_STATUSES.has(job.status)) {
    const live = keys.liveJob(job.principal, job.created_ms, job.job_id);
    const value: LiveEntry = { session_id: job.session_id, agent: bareAgent(job.agent) };
    return [kvWrite(live, value)];
  }
  const at = [job.created_ms, job.job_id] as const;
  const listed = listedJob(job);
  const writes: KvWrite[] = first ? [] : [kvWrite(keys.liveJob(job.principal, ...at))];
  writes.push(
    kvWrite(keys.statusJob(job.principal, job.status, ...at), listed),
    // The status entry holds the listed fields; the agent entry points at it (see `agentSource`).
    kvWrite(keys.agentJob(job.principal, bareAgent(job.agent), job.status, ...at), null),
    kvWrite(keys.endedJob(endedMsOf(job), job.job_id), job.session_id),
  );
  return writes;
}

/**
 * The deletes of a terminal job's index entries (retention).
 *
 * @param job the terminal record
 * @returns deletes of its live, status and agent entries
 */
export function jobIndexDeletes(job: JobRecord): KvWrite[] {
  const at = [job.created_ms, job.job_id] as const;
  return [
    kvWrite(keys.liveJob(job.principal, ...at)),
    kvWrite(keys.statusJob(job.principal, job.status, ...at)),
    kvWrite(keys.agentJob(job.principal, bareAgent(job.agent), job.status, ...at)),
  ];
}

/**
 * The index entries of layout 2 that layout 3 folded into the live entry:
 * a live job's entries in the `"live"` bucket of both list_jobs indexes.
 *
 * @param job the record
 * @returns their deletes
 */
export function layout2LiveDeletes(job: JobRecord): KvWrite[] {
  const at = [job.created_ms, job.job_id] as const;
  return [
    kvWrite(keys.statusJob(job.principal, LIVE, ...at)),
    kvWrite(keys.agentJob(job.principal, bareAgent(job.agent), LIVE, ...at)),
  ];
}

/** One candidate of a listing, from one bucket. */
interface Candidate {
  pos: JobPosition;
  /**
   * The listed job (status entries), or how to read it: its record (live
   * entries) or its status entry (agent entries).
   */
  job: ListedJob | (() => Promise<ListedJob | null>);
}

/** Orders positions as KV orders the index keys. */
function ascending(a: JobPosition, b: JobPosition): number {
  if (a.createdMs !== b.createdMs) return a.createdMs < b.createdMs ? -1 : 1;
  return a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0;
}

function positionOf(key: Deno.KvKey): JobPosition {
  return { createdMs: key.at(-2) as number, jobId: key.at(-1) as string };
}

/**
 * A page of a principal's jobs, in creation order, from the indexes.
 *
 * The live entries are read first, in one go (a principal's live jobs
 * are bounded by its cap), and the terminal buckets after: a job that ends
 * meanwhile is then found in one or the other (once, duplicates are
 * dropped), never in neither.
 *
 * @param kv the database
 * @param principal whose jobs
 * @param query filters and paging
 * @returns the page
 */
export async function listJobPage(
  kv: Deno.Kv,
  principal: string,
  query: JobQuery,
): Promise<JobPage> {
  const statuses = new Set<JobStatus>(query.statuses ?? JOB_STATUSES);
  const buckets = [...new Set([...statuses].map(bucketOf))];
  const exactAgent = query.agent?.includes("@") ? query.agent : undefined;
  const agent = query.agent === undefined ? undefined : bareAgent(query.agent);
  const prefixOf = (bucket: string) =>
    bucket === LIVE
      ? keys.principalLiveJobs(principal)
      : agent === undefined
      ? keys.statusJobs(principal, bucket)
      : keys.agentJobs(principal, agent, bucket);
  const newest = query.newestFirst === true;
  const compare = newest ? (a: JobPosition, b: JobPosition) => ascending(b, a) : ascending;
  const rangeOf = (prefix: Deno.KvKey): { start: Deno.KvKey; end: Deno.KvKey } => {
    const lowest: Deno.KvKey = query.createdAfterMs !== undefined
      ? [...prefix, Math.floor(query.createdAfterMs) + 1]
      : prefix;
    const highest: Deno.KvKey = [...prefix, query.createdBeforeMs ?? Number.MAX_SAFE_INTEGER];
    if (!query.after) return { start: lowest, end: highest };
    const at: Deno.KvKey = [...prefix, query.after.createdMs, query.after.jobId];
    // The end of a range is exclusive, so the cursor's own job is left out either way.
    return newest ? { start: lowest, end: at } : { start: [...at, ""], end: highest };
  };
  // Reads past a page's worth are wasted; reading less costs round trips.
  const batchSize = Math.min(query.limit + 1, 500);
  const sources: Array<AsyncIterator<Candidate>> = [];
  if (buckets.includes(LIVE)) {
    sources.push(await liveSource(kv, rangeOf(prefixOf(LIVE)), newest, agent));
  }
  for (const bucket of buckets) {
    if (bucket === LIVE) continue;
    const range = rangeOf(prefixOf(bucket));
    sources.push(
      agent === undefined
        ? terminalSource(kv, range, batchSize, newest)
        : agentSource(kv, range, batchSize, newest, (pos) =>
          keys.statusJob(principal, bucket, pos.createdMs, pos.jobId)),
    );
  }
  const matches = (job: ListedJob) =>
    statuses.has(job.status) && (exactAgent === undefined || job.agent === exactAgent) &&
    (query.createdAfterMs === undefined || job.created_ms > query.createdAfterMs);

  const heads = await Promise.all(sources.map((s) => s.next()));
  const jobs: ListedJob[] = [];
  let last: JobPosition | undefined;
  while (true) {
    let min = -1;
    for (let i = 0; i < heads.length; i++) {
      if (heads[i].done) continue;
      if (min < 0 || compare(heads[i].value.pos, heads[min].value.pos) < 0) min = i;
    }
    if (min < 0) return { jobs };
    const candidate = heads[min].value as Candidate;
    heads[min] = await sources[min].next();
    if (last && compare(candidate.pos, last) === 0) continue;
    const job = typeof candidate.job === "function" ? await candidate.job() : candidate.job;
    if (!job || !matches(job)) continue;
    if (jobs.length === query.limit) {
      const end = jobs[jobs.length - 1];
      for (const s of sources) await s.return?.();
      return { jobs, next: { createdMs: end.created_ms, jobId: end.job_id } };
    }
    jobs.push(job);
    last = candidate.pos;
  }
}

/** Terminal entries, with the record as value, read lazily. */
async function* terminalSource(
  kv: Deno.Kv,
  range: { start: Deno.KvKey; end: Deno.KvKey },
  batchSize: number,
  reverse: boolean,
): AsyncGenerator<Candidate> {
  for await (const e of kv.list<JobRecord>(range, { batchSize, reverse })) {
    yield { pos: positionOf(e.key), job: e.value };
  }
}

/**
 * Agent entries: since layout 4 without a value, the listed job read from
 * its status entry (`statusKey`). The positions of one listing batch (a
 * page's worth) are read together, `GET_MANY` keys a call, the calls at
 * once, when the merge reaches the first of them; an entry written by an
 * earlier layout holds the listed job itself.
 */
async function* agentSource(
  kv: Deno.Kv,
  range: { start: Deno.KvKey; end: Deno.KvKey },
  batchSize: number,
  reverse: boolean,
  statusKey: (pos: JobPosition) => Deno.KvKey,
): AsyncGenerator<Candidate> {
  let pending: JobPosition[] = [];
  const drain = function* (): Generator<Candidate> {
    const slice = pending;
    pending = [];
    let read: Promise<Array<ListedJob | null>> | undefined;
    const listed = () =>
      read ??= Promise.all(
        Array.from(
          { length: Math.ceil(slice.length / GET_MANY) },
          (_, i) =>
            kv.getMany<ListedJob[]>(slice.slice(i * GET_MANY, (i + 1) * GET_MANY).map(statusKey)),
        ),
      ).then((parts) => parts.flat().map((e) => e.value));
    for (let k = 0; k < slice.length; k++) {
      yield { pos: slice[k], job: async () => (await listed())[k] };
    }
  };
  for await (const e of kv.list<ListedJob | null>(range, { batchSize, reverse })) {
    if (e.value === null) {
      pending.push(positionOf(e.key));
      if (pending.length === batchSize) yield* drain();
    } else {
      yield* drain();
      yield { pos: positionOf(e.key), job: e.value };
    }
  }
  yield* drain();
}

/**
 * Live entries (of one agent, when given): every entry read at once (before
 * any terminal bucket), the records read in small batches as the merge
 * reaches them.
 */
async function liveSource(
  kv: Deno.Kv,
  range: { start: Deno.KvKey; end: Deno.KvKey },
  reverse: boolean,
  agent: string | undefined,
): Promise<AsyncGenerator<Candidate>> {
  const positions: JobPosition[] = [];
  for await (const e of kv.list<LiveEntry>(range, { batchSize: 500, reverse })) {
    if (agent === undefined || e.value.agent === agent) positions.push(positionOf(e.key));
  }
  return (async function* () {
    for (let from = 0; from < positions.length; from += GET_MANY) {
      const slice = positions.slice(from, from + GET_MANY);
      // Read once, when the merge reaches the first of them.
      let read: Promise<Array<JobRecord | null>> | undefined;
      const records = () =>
        read ??= kv.getMany<JobRecord[]>(slice.map((p) => keys.job(p.jobId)))
          .then((entries) => entries.map((e) => e.value));
      for (let k = 0; k < slice.length; k++) {
        yield { pos: slice[k], job: async () => (await records())[k] };
      }
    }
  })();
}

/** Filters of a listing across every principal. */
export interface AllJobsQuery {
  /** Only jobs this accepts. */
  match: (job: JobRecord) => boolean;
  /** Resume with the jobs minted before this id (exclusive). */
  beforeJobId?: string;
  /** At most this many. */
  limit: number;
  /** Records read at most for one page, so a filter that matches little cannot read the store. */
  maxScan: number;
}

/** One page of a listing across every principal. */
export interface AllJobsPage {
  /** The jobs, newest first. */
  jobs: JobRecord[];
  /** The id to resume before when more may follow. */
  next?: string;
}

/**
 * A page of every principal's jobs, newest first, read from the job records
 * themselves: their ids are ULIDs, so KV keeps them in minting order. A page
 * ends after `limit` matches or `maxScan` records, whichever comes first;
 * either way `next` resumes exactly after the last record read.
 *
 * @param kv the database
 * @param query filter, cursor and bounds
 * @returns the page
 */
export async function listAllJobPage(kv: Deno.Kv, query: AllJobsQuery): Promise<AllJobsPage> {
  const prefix = keys.jobs();
  const range = query.beforeJobId === undefined
    ? { prefix }
    : { prefix, end: keys.job(query.beforeJobId) };
  const jobs: JobRecord[] = [];
  let scanned = 0;
  let lastId: string | undefined;
  const batchSize = Math.min(query.limit + 1, 500);
  for await (const e of kv.list<JobRecord>(range, { reverse: true, batchSize })) {
    if (jobs.length === query.limit || scanned === query.maxScan) return { jobs, next: lastId };
    scanned++;
    lastId = e.key.at(-1) as string;
    if (query.match(e.value)) jobs.push(e.value);
  }
  return { jobs };
}
