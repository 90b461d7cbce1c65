/**
 * Runtime nodes sharing one KV: each keeps a record with a lease it renews;
 * a node whose lease lapsed is dead and the jobs it ran are claimed, one
 * atomic `check` each, by whichever node notices first. Cancel requests and
 * session handovers for another node are keys here too. Every shared truth
 * is a key changed by an atomic operation with `check`: there is no other
 * consensus.
 *
 * @module
 */
import { keys } from "./keys.ts";
import { whileBusy } from "./busy.ts";
import type { JobRecord } from "./records.ts";
import { TERMINAL_STATUSES } from "../protocol/messages.ts";
import { ArcpError, type ErrorPayload } from "../protocol/errors.ts";

/**
 * A start refused for a reason one line states: a KV Connect database that
 * would not open (unreachable, token refused), or a node id a live node holds.
 */
export class StartRefusedError extends Error {
  /** @param message the one line, without secrets */
  constructor(message: string) {
    super(message);
    this.name = "StartRefusedError";
  }
}

/** A node as other nodes see it. */
export interface NodeRecord {
  /** The node id (`--node-id`, or generated). */
  node_id: string;
  /** This run of the node: a restart under the same id is a new run. */
  run: string;
  /** Where clients reach it, if it was told. */
  url?: string;
  /** Host name and process id: a node on this host whose process is gone is dead at once. */
  host: string;
  /** Its process id. */
  pid: number;
  /** When this run joined (epoch ms). */
  started_at: number;
  /** When the lease was last renewed (epoch ms). */
  renewed_at: number;
  /** When the lease lapses unless renewed (epoch ms). */
  lease_until: number;
  /** Jobs it ran at its last renewal. */
  live_jobs: number;
}

/** A cancel request for a job running on another node. */
export interface CancelRequest {
  /** Why, as the requesting session or operator gave it. */
  reason?: string;
  /** What the CANCELLED error's details carry (an operator cancel's `actor`). */
  details?: Record<string, unknown>;
  /** When it was asked (epoch ms). */
  at: number;
}

/** A request that a session's holder let it go to another node. */
export interface HandoverRequest {
  /** The node run that asks. */
  to: string;
  /** When it was asked (epoch ms). */
  at: number;
}

/** An input forwarded to the node running its job. */
export interface InputRequest {
  /** The sending session. */
  session_id: string;
  /** Its principal. */
  principal: string;
  /** The input, as the session sent it. */
  content?: unknown;
  /** No input follows. */
  end?: boolean;
  /** When it was asked (epoch ms). */
  at: number;
}

/** A pending {@linkcode InputRequest} as listed. */
export interface PendingInput {
  /** The job. */
  jobId: string;
  /** The request's id (its answer's key). */
  id: string;
  /** The request. */
  request: InputRequest;
  /** Its versionstamp: taking it checks this. */
  versionstamp: string;
}

/** The owning node's answer to a forwarded input. */
export type InputAnswer = { input_seq: number } | { error: ErrorPayload };

/** How long a request key stays in KV if no node acts on it (ms). */
const REQUEST_TTL_MS = 10 * 60_000;

/**
 * The node records, job claims and cross-node requests of one KV.
 *
 * @example
 * ```ts ignore
 * const nodes = new NodeDirectory(kv);
 * for (const n of await nodes.list()) console.log(n.node_id, n.lease_until);
 * ```
 */
export class NodeDirectory {
  #kv: Deno.Kv;

  /** @param kv the database */
  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /**
   * Every node record, live or not.
   *
   * @returns them, by node id
   */
  async list(): Promise<NodeRecord[]> {
    const out: NodeRecord[] = [];
    for await (const e of this.#kv.list<NodeRecord>({ prefix: keys.nodes() })) out.push(e.value);
    return out;
  }

  /**
   * A node's record with its versionstamp.
   *
   * @param nodeId the node
   * @returns the entry (value null when absent)
   */
  get(nodeId: string): Promise<Deno.KvEntryMaybe<NodeRecord>> {
    return this.#kv.get<NodeRecord>(keys.node(nodeId));
  }

  /**
   * Writes a node record if its key is still at `versionstamp` (null: absent).
   *
   * @param record the record
   * @param versionstamp what the key must still hold
   * @returns the new versionstamp, or null when the key changed meanwhile
   */
  async put(record: NodeRecord, versionstamp: string | null): Promise<string | null> {
    const key = keys.node(record.node_id);
    const res = await whileBusy(() =>
      this.#kv.atomic().check({ key, versionstamp }).set(key, record).commit()
    );
    return res.ok ? res.versionstamp : null;
  }

  /**
   * Deletes a node record if its key is still at `versionstamp`.
   *
   * @param nodeId the node
   * @param versionstamp what the key must still hold
   * @returns whether it was deleted
   */
  async remove(nodeId: string, versionstamp: string): Promise<boolean> {
    const key = keys.node(nodeId);
    return (await whileBusy(() =>
      this.#kv.atomic().check({ key, versionstamp }).delete(key).commit()
    ))
      .ok;
  }

  /**
   * Claims a job for a node run, if it is still live and owned by the run it
   * was read with: of every node trying at once, exactly one succeeds.
   *
   * @param jobId the job
   * @param fromRun the dead run that owned it (undefined: a record without owner)
   * @param to the claiming node
   * @returns the claimed record, or undefined when another node was first or it ended
   */
  async claimJob(
    jobId: string,
    fromRun: string | undefined,
    to: { node_id: string; run: string },
  ): Promise<JobRecord | undefined> {
    const key = keys.job(jobId);
    const entry = await this.#kv.get<JobRecord>(key);
    const job = entry.value;
    if (!job || TERMINAL_STATUSES.has(job.status) || job.node_run !== fromRun) return undefined;
    const claimed: JobRecord = { ...job, node_id: to.node_id, node_run: to.run };
    const res = await whileBusy(() => this.#kv.atomic().check(entry).set(key, claimed).commit());
    return res.ok ? claimed : undefined;
  }

  /**
   * Asks the node running a job to cancel it.
   *
   * @param jobId the job
   * @param request why and when
   */
  async requestCancel(jobId: string, request: CancelRequest): Promise<void> {
    await this.#request(keys.cancelRequest(jobId), request);
  }

  /**
   * Writes a request and, in the same commit, the mark a node alone on its
   * KV polls ({@linkcode NodeDirectory.requestMark}).
   */
  async #request(key: Deno.KvKey, request: unknown): Promise<string> {
    const res = await whileBusy(() =>
      this.#kv.atomic()
        .set(key, request, { expireIn: REQUEST_TTL_MS })
        .set(keys.requestMark(), Date.now())
        .commit()
    );
    // A commit without checks cannot be refused; the type says it could.
    if (!res.ok) throw new ArcpError("INTERNAL_ERROR", "a request between nodes was not written");
    return res.versionstamp;
  }

  /**
   * The mark every request rewrites: unchanged since a poll read it, no
   * request was written since (by a node of this version).
   *
   * @returns its versionstamp, or null before any request
   */
  async requestMark(): Promise<string | null> {
    return (await this.#kv.get(keys.requestMark())).versionstamp;
  }

  /**
   * Every pending cancel request.
   *
   * @returns job id and request
   */
  async cancelRequests(): Promise<Array<[string, CancelRequest]>> {
    const out: Array<[string, CancelRequest]> = [];
    for await (const e of this.#kv.list<CancelRequest>({ prefix: keys.cancelRequests() })) {
      out.push([e.key.at(-1) as string, e.value]);
    }
    return out;
  }

  /**
   * Drops a cancel request once acted on (or its job is gone).
   *
   * @param jobId the job
   */
  async dropCancel(jobId: string): Promise<void> {
    await whileBusy(() => this.#kv.delete(keys.cancelRequest(jobId)));
  }

  /**
   * Asks a session's holder to let it go.
   *
   * @param sessionId the session
   * @param request who asks
   */
  async requestHandover(sessionId: string, request: HandoverRequest): Promise<void> {
    await this.#request(keys.handover(sessionId), request);
  }

  /**
   * Every pending handover request.
   *
   * @returns session id and request
   */
  async handovers(): Promise<Array<[string, HandoverRequest]>> {
    const out: Array<[string, HandoverRequest]> = [];
    for await (const e of this.#kv.list<HandoverRequest>({ prefix: keys.handovers() })) {
      out.push([e.key.at(-1) as string, e.value]);
    }
    return out;
  }

  /**
   * Drops a handover request once answered.
   *
   * @param sessionId the session
   */
  async dropHandover(sessionId: string): Promise<void> {
    await whileBusy(() => this.#kv.delete(keys.handover(sessionId)));
  }

  /**
   * Asks the node running a job to record an input.
   *
   * @param jobId the job
   * @param id the request id
   * @param request the input and its sender
   * @returns the request's versionstamp
   */
  async requestInput(jobId: string, id: string, request: InputRequest): Promise<string> {
    return await this.#request(keys.inputRequest(jobId, id), request);
  }

  /**
   * Every pending input request, in the order sent (ids are ULIDs).
   *
   * @returns them
   */
  async inputRequests(): Promise<PendingInput[]> {
    const out: PendingInput[] = [];
    for await (const e of this.#kv.list<InputRequest>({ prefix: keys.inputRequests() })) {
      const [jobId, id] = e.key.slice(-2) as [string, string];
      out.push({ jobId, id, request: e.value, versionstamp: e.versionstamp });
    }
    return out;
  }

  /**
   * Takes an input request away, if it is still unchanged: the owning node
   * taking it to record it and the sender withdrawing it race on one check,
   * so exactly one of them wins.
   *
   * @param jobId the job
   * @param id the request id
   * @param versionstamp what the key must still hold
   * @returns whether this caller took it
   */
  async takeInput(jobId: string, id: string, versionstamp: string): Promise<boolean> {
    const key = keys.inputRequest(jobId, id);
    return (await whileBusy(() =>
      this.#kv.atomic().check({ key, versionstamp }).delete(key).commit()
    )).ok;
  }

  /**
   * Answers a forwarded input.
   *
   * @param id the request id
   * @param answer its `input_seq`, or the refusal
   */
  async answerInput(id: string, answer: InputAnswer): Promise<void> {
    await whileBusy(() => this.#kv.set(keys.inputAnswer(id), answer, { expireIn: REQUEST_TTL_MS }));
  }

  /**
   * Reads (and removes) the answer to a forwarded input.
   *
   * @param id the request id
   * @returns the answer, or undefined while none came
   */
  async inputAnswer(id: string): Promise<InputAnswer | undefined> {
    const entry = await this.#kv.get<InputAnswer>(keys.inputAnswer(id));
    if (!entry.value) return undefined;
    await whileBusy(() => this.#kv.delete(keys.inputAnswer(id)));
    return entry.value;
  }
}
