/**
 * This runtime as one node of several on one KV: it joins with a node
 * record whose lease it renews, ends the jobs of nodes whose lease lapsed
 * (each claimed with one atomic `check`, so exactly one node ends it), acts
 * on cancel requests for its jobs and handover requests for its sessions
 * that other nodes wrote, and leaves cleanly. A node that finds its own
 * record gone or taken (it stalled past its lease and was presumed dead)
 * stops its jobs without writing: another node already ended them.
 *
 * @module
 */
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import { newUlid } from "../protocol/ids.ts";
import type { Input } from "../protocol/job_input.ts";
import { type InputAnswer, type NodeRecord, StartRefusedError } from "../store/nodes.ts";
import { keys } from "../store/keys.ts";
import type { JobRecord } from "../store/records.ts";
import type { Store } from "../store/store.ts";
import type { Logger } from "../logger.ts";
import type { JobTable } from "./job_table.ts";
import type { JobEvents } from "./operator_events.ts";

/** How a node keeps its lease. */
export interface NodeOptions {
  /** The node id; default generated (`n-` and 10 random characters). */
  id?: string;
  /** Where clients reach this node, shown in node listings. */
  url?: string;
  /** How long a lease lasts without renewal (ms); default 10 s. */
  leaseMs?: number;
  /** Time between renewals, and between scans for dead nodes (ms); default 2 s. */
  renewMs?: number;
}

/** Defaults of {@linkcode NodeOptions}. */
export const DEFAULT_NODE_LEASE = { leaseMs: 10_000, renewMs: 2_000 } as const;

/** A node as `listNodes()` reports it. */
export interface NodeInfo {
  /** The node id. */
  node_id: string;
  /** Where clients reach it, if known. */
  url?: string;
  /** Milliseconds since this run of it joined. */
  age_ms: number;
  /** Jobs it ran at its last renewal. */
  live_jobs: number;
  /** When its lease lapses, RFC 3339. */
  lease_expires_at: string;
  /** Whether its lease holds (false: it is dead and its jobs are being ended). */
  alive: boolean;
  /** Whether this is the node answering. */
  self: boolean;
}

/** What the cluster needs from the rest of the runtime. */
export interface ClusterDeps {
  /** The store. */
  store: Store;
  /** The jobs live in this process. */
  live: JobTable;
  /** Where joining is logged. */
  log: Logger;
  /** Where takeovers and fencing are logged and counted. */
  events: JobEvents;
  /**
   * Ends a job claimed from a dead node with the given error.
   *
   * @param job the claimed record (this node owns it now)
   * @param error why it ended
   */
  endClaimed(job: JobRecord, error: ArcpError): Promise<void>;
  /**
   * Cancels a job live in this process on another node's request.
   *
   * @param jobId the job
   * @param reason why, if given
   * @param details what the CANCELLED error's details carry, if any
   */
  cancelLocal(jobId: string, reason?: string, details?: Record<string, unknown>): void;
  /**
   * Lets go of a session another node resumes: stops feeding it, closes its
   * connection, and marks its record held by `to`.
   *
   * @param sessionId the session
   * @param to the node run taking it
   */
  release(sessionId: string, to: string): Promise<void>;
  /** Stops every job without writing (this node was presumed dead). */
  fence(): void;
  /**
   * Records an input another node forwarded for a job live here, as if its
   * session had sent it here.
   *
   * @param who the sending session and its principal
   * @param req the input
   * @returns its `input_seq`, once recorded
   */
  deliverInput(who: { sessionId: string; principal: string }, req: Input): Promise<number>;
}

/** How long a forwarded input waits for the node running its job to take it (ms). */
const INPUT_TAKE_MS = 15_000;

/** How long, once taken, it waits for that node to say it was recorded (ms). */
const INPUT_ANSWER_MS = 60_000;

/**
 * Whether a process on this host still exists. SIGCONT is the probe: it
 * changes nothing for a running process, and only "no such process" counts
 * as gone (a process of another user, or no permission to ask, counts as alive).
 */
function processAlive(pid: number): boolean {
  if (Deno.build.os === "windows") return true;
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch (err) {
    return !(err instanceof Deno.errors.NotFound);
  }
}

/**
 * The node runs joined in this process and not yet left: a record naming
 * this process but none of these is a run that ended here (an earlier
 * runtime in this process, or a backup restored into it).
 */
const RUNS_HERE = new Set<string>();

/** This node: its lease, the scans for dead nodes, and the requests it serves. */
export class Cluster {
  /** The node id. */
  readonly nodeId: string;
  /** This run of the node. */
  readonly run: string = newUlid();
  #deps: ClusterDeps;
  #url: string | undefined;
  #leaseMs: number;
  #renewMs: number;
  #host = Deno.hostname();
  #startedAt = Date.now();
  #versionstamp: string | null = null;
  #stop = new AbortController();
  #loops: Promise<void>[] = [];
  #fenced = false;
  #others = false;
  /** Node runs alive at the last scan. */
  #aliveRuns = new Set<string>();
  /** Whether every live job was scanned once (at start). */
  #scanned = false;
  /** Wakes the request poll at once (a local job started, so requests may follow). */
  #poke: (() => void) | undefined;

  /**
   * @param deps the store, live jobs, and how to end, cancel, release and fence
   * @param options node id, URL and lease timings
   */
  constructor(deps: ClusterDeps, options: NodeOptions = {}) {
    this.#deps = deps;
    this.nodeId = options.id ?? `n-${newUlid().slice(-10).toLowerCase()}`;
    this.#url = options.url;
    this.#leaseMs = options.leaseMs ?? DEFAULT_NODE_LEASE.leaseMs;
    this.#renewMs = options.renewMs ?? DEFAULT_NODE_LEASE.renewMs;
  }

  /**
   * Whether other live nodes shared the KV at the last scan: then caps are
   * checked in KV, not in memory alone.
   */
  get shared(): boolean {
    return this.#others;
  }

  /** Whether this node is fenced: presumed dead by the others, it runs nothing. */
  get fenced(): boolean {
    return this.#fenced;
  }

  /**
   * Joins: writes this node's record. A record of the same id whose lease
   * still holds is waited out (a restart soon after a crash); one renewed
   * meanwhile is a live node with this id, and joining fails.
   *
   * @throws {StartRefusedError} when another live node holds this id
   */
  async join(): Promise<void> {
    const nodes = this.#deps.store.nodes;
    for (;;) {
      const entry = await nodes.get(this.nodeId);
      const held = entry.value;
      if (held && held.run !== this.run && this.#alive(held)) {
        const waitMs = held.lease_until - Date.now();
        this.#deps.log.warn("node id held by an earlier run; waiting for its lease to lapse", {
          node_id: this.nodeId,
          wait_ms: waitMs,
        });
        await new Promise((r) => setTimeout(r, Math.max(10, waitMs + 10)));
        const again = await nodes.get(this.nodeId);
        if (again.value && again.value.renewed_at !== held.renewed_at) {
          throw new StartRefusedError(
            `node id ${this.nodeId} is in use by a live runtime (pid ${again.value.pid} on ${again.value.host}); pass another --node-id`,
          );
        }
        continue;
      }
      const vs = await nodes.put(this.#record(), entry.versionstamp);
      if (vs) {
        this.#versionstamp = vs;
        RUNS_HERE.add(this.run);
        break;
      }
    }
    this.#deps.log.info("node joined", {
      node_id: this.nodeId,
      run: this.run,
      lease_ms: this.#leaseMs,
      job_feeds: this.#deps.store.remote
        ? "kv.watch (KV Connect delivers other nodes' writes)"
        : "polled with back-off (a local KV file's watch misses other processes' writes)",
      requests: "polled with back-off",
    });
  }

  /** Starts renewing, scanning for dead nodes and serving requests. */
  start(): void {
    this.#loops.push(this.#leaseLoop(), this.#requestLoop());
  }

  /**
   * Brings the request poll forward (call when a job goes live here): other
   * nodes may soon ask to cancel it or send it input. A node alone on its KV
   * has nobody to ask, so nothing changes; the poll goes on at its own pace
   * and the next dead-node scan notices a node that joins.
   */
  poke(): void {
    if (this.#others) this.#poke?.();
  }

  /**
   * Ends the jobs of dead nodes, this id's earlier runs included. Each job is
   * claimed with an atomic check first, so of several nodes scanning at once
   * exactly one ends it; the others skip it.
   *
   * @returns how many jobs this node ended
   */
  async reap(): Promise<number> {
    if (this.#fenced) return 0;
    const store = this.#deps.store;
    const nodes = await store.nodes.list();
    const alive = new Set<string>([this.run]);
    for (const n of nodes) if (this.#alive(n)) alive.add(n.run);
    this.#others = alive.size > 1;
    // Jobs can only have lost their node when a record is dead or one alive at the last
    // scan is gone (a node that left); otherwise the scan of every live job is skipped.
    const lost = !this.#scanned || nodes.some((n) => !alive.has(n.run)) ||
      [...this.#aliveRuns].some((run) => !alive.has(run));
    if (!lost) {
      this.#aliveRuns = alive;
      return 0;
    }
    let ended = 0;
    for await (const job of store.liveJobs()) {
      if (job.node_run !== undefined && alive.has(job.node_run)) continue;
      if (this.#deps.live.get(job.job_id)) continue;
      // A node that joined after the list above: its record is read again before anything is ended.
      if (job.node_id !== undefined) {
        const owner = (await store.nodes.get(job.node_id)).value;
        if (owner && owner.run === job.node_run && this.#alive(owner)) {
          alive.add(owner.run);
          continue;
        }
      }
      const claimed = await store.nodes.claimJob(job.job_id, job.node_run, {
        node_id: this.nodeId,
        run: this.run,
      });
      if (!claimed) continue;
      this.#deps.events.tookOver(claimed, job.node_id);
      await this.#deps.endClaimed(
        claimed,
        new ArcpError(
          "INTERNAL_ERROR",
          job.node_id
            ? `node ${job.node_id} running this job stopped`
            : "the runtime stopped while this job was running",
          job.node_id ? { node_id: job.node_id } : undefined,
        ),
      );
      ended++;
    }
    // Only a scan that finished counts: one that failed midway is run again.
    this.#scanned = true;
    this.#aliveRuns = alive;
    // A dead node's record goes once nothing names it; a renewal since (it was alive after all) keeps it.
    for (const n of nodes) {
      if (this.#alive(n) || n.run === this.run) continue;
      const entry = await store.nodes.get(n.node_id);
      if (entry.value?.run === n.run && entry.versionstamp) {
        await store.nodes.remove(n.node_id, entry.versionstamp);
      }
    }
    return ended;
  }

  /**
   * Every node record, for operators.
   *
   * @returns the nodes, this one first
   */
  async listNodes(): Promise<NodeInfo[]> {
    const now = Date.now();
    const out = (await this.#deps.store.nodes.list()).map((n): NodeInfo => ({
      node_id: n.node_id,
      ...(n.url ? { url: n.url } : {}),
      age_ms: now - n.started_at,
      live_jobs: n.run === this.run ? this.#deps.live.size : n.live_jobs,
      lease_expires_at: new Date(n.lease_until).toISOString(),
      alive: this.#alive(n),
      self: n.run === this.run,
    }));
    return out.sort((a, b) => Number(b.self) - Number(a.self));
  }

  /**
   * Whether a node run is alive as far as this node can tell.
   *
   * @param run the node run
   * @returns true while its lease holds
   */
  async isRunAlive(run: string): Promise<boolean> {
    if (run === this.run) return true;
    for (const n of await this.#deps.store.nodes.list()) if (n.run === run) return this.#alive(n);
    return false;
  }

  /**
   * Whether a node run was alive at the last scan (no KV read).
   *
   * @param run the node run
   * @returns true when it was
   */
  wasAlive(run: string): boolean {
    return run === this.run || this.#aliveRuns.has(run);
  }

  /**
   * Forwards an input to the node running its job and waits for that node
   * to record it. Not taken in time, it is withdrawn (one atomic check
   * against the taking node) and refused, retryable, with nothing recorded.
   *
   * @param job the job, running on another node
   * @param who the sending session and its principal
   * @param req the input
   * @returns its `input_seq`, once the owning node recorded it
   * @throws {ArcpError} the owning node's refusal; `INVALID_REQUEST` when that
   *   node stopped; `INTERNAL_ERROR` (retryable) when it did not answer in time
   */
  async forwardInput(
    job: JobRecord,
    who: { sessionId: string; principal: string },
    req: Input,
  ): Promise<number> {
    const owner = job.node_id ?? "unknown";
    const jobId = job.job_id;
    if (job.node_run === undefined || !(await this.isRunAlive(job.node_run))) {
      throw new ArcpError(
        "INVALID_REQUEST",
        `job ${jobId} ran on node ${owner}, which stopped; it takes no more input`,
        { job_id: jobId, node_id: owner },
      );
    }
    const nodes = this.#deps.store.nodes;
    const id = newUlid();
    const vs = await nodes.requestInput(jobId, id, {
      session_id: who.sessionId,
      principal: who.principal,
      ...(req.content !== undefined ? { content: req.content } : {}),
      ...(req.end ? { end: true } : {}),
      at: Date.now(),
    });
    const waitAnswer = async (ms: number): Promise<InputAnswer | undefined> => {
      const stop = new AbortController();
      const timer = setTimeout(() => stop.abort(), ms);
      try {
        for await (const _ of this.#deps.store.follow(keys.inputAnswer(id), stop.signal)) {
          const answer = await nodes.inputAnswer(id);
          if (answer) return answer;
        }
        return undefined;
      } finally {
        clearTimeout(timer);
        stop.abort();
      }
    };
    let answer = await waitAnswer(INPUT_TAKE_MS);
    if (!answer) {
      if (await nodes.takeInput(jobId, id, vs)) {
        throw new ArcpError(
          "INTERNAL_ERROR",
          `node ${owner} running job ${jobId} did not take the input in time; nothing was recorded; send it again`,
          { job_id: jobId, node_id: owner },
        );
      }
      answer = await waitAnswer(INPUT_ANSWER_MS);
      if (!answer) {
        throw new ArcpError(
          "INTERNAL_ERROR",
          `node ${owner} running job ${jobId} took the input but did not confirm it; read the transcript before sending it again`,
          { job_id: jobId, node_id: owner },
        );
      }
    }
    if ("input_seq" in answer) return answer.input_seq;
    throw new ArcpError(answer.error.code, answer.error.message, answer.error.details);
  }

  /** Stops the loops and removes this node's record (its jobs were stopped first). */
  async leave(): Promise<void> {
    RUNS_HERE.delete(this.run);
    this.#stop.abort();
    await Promise.all(this.#loops);
    if (this.#versionstamp && !this.#fenced) {
      await this.#deps.store.nodes.remove(this.nodeId, this.#versionstamp).catch(() => {});
    }
  }

  #alive(n: NodeRecord): boolean {
    if (n.run === this.run) return true;
    if (n.lease_until <= Date.now()) return false;
    // On this host a process that is gone is dead now, not when its lease lapses.
    if (n.host !== this.#host) return true;
    return n.pid === Deno.pid ? RUNS_HERE.has(n.run) : processAlive(n.pid);
  }

  #record(): NodeRecord {
    const now = Date.now();
    const record: NodeRecord = {
      node_id: this.nodeId,
      run: this.run,
      host: this.#host,
      pid: Deno.pid,
      started_at: this.#startedAt,
      renewed_at: now,
      lease_until: now + this.#leaseMs,
      live_jobs: this.#deps.live.size,
    };
    if (this.#url) record.url = this.#url;
    return record;
  }

  /** Renews the lease; a record changed by someone else means this node was declared dead. */
  async #renew(): Promise<void> {
    if (this.#fenced) return;
    const vs = await this.#deps.store.nodes.put(this.#record(), this.#versionstamp);
    if (vs) {
      this.#versionstamp = vs;
      return;
    }
    this.#fenced = true;
    RUNS_HERE.delete(this.run);
    this.#deps.events.fenced(this.nodeId);
    this.#deps.fence();
  }

  async #leaseLoop(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      await sleep(this.#renewMs, signal);
      if (signal.aborted) break;
      try {
        await this.#renew();
        await this.reap();
      } catch (err) {
        this.#deps.log.warn("node lease renewal or dead-node scan failed; retrying", {
          error: String(err),
        });
      }
    }
  }

  /**
   * Polls cancel, input and handover requests, backing off from 10 ms to 250
   * ms while none come. A poke (a job started here) brings the next poll to
   * within 10 ms and the back-off back to its start: a burst of job starts
   * costs one poll, not one each.
   *
   * A node that saw no other at its last scan reads only the mark every
   * request rewrites, and lists the requests when it moved: one KV read a
   * poll instead of three. It lists them every poll still while one listed
   * was left (not this node's to act on yet), and once a renewal interval
   * anyway, for requests a node of an earlier version wrote without the mark.
   */
  async #requestLoop(): Promise<void> {
    const signal = this.#stop.signal;
    const nodes = this.#deps.store.nodes;
    const quick = 10;
    let wait = quick;
    /** The mark when the requests were last listed, and whether every one listed then was served. */
    let mark: string | null | undefined;
    let served = false;
    let listedAt = 0;
    while (!signal.aborted) {
      let acted = false;
      try {
        const alone = !this.#others && served && Date.now() - listedAt < this.#renewMs;
        // Read before the lists: a request written after this read moves the mark again.
        const now = this.#others ? undefined : await nodes.requestMark();
        if (!alone || now !== mark) {
          mark = now;
          listedAt = Date.now();
          ({ acted, served } = await this.#serveRequests());
        }
      } catch (err) {
        served = false;
        if (!signal.aborted) {
          this.#deps.log.warn("polling cross-node requests failed; retrying", {
            error: String(err),
          });
        }
      }
      wait = acted ? quick : Math.min(wait * 2, 250);
      await new Promise<void>((resolve) => {
        const due = Date.now() + wait;
        let timer = setTimeout(done, wait);
        function done() {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        }
        this.#poke = () => {
          wait = quick;
          if (due - Date.now() <= quick) return;
          clearTimeout(timer);
          timer = setTimeout(done, quick);
        };
        signal.addEventListener("abort", done, { once: true });
      });
      this.#poke = undefined;
    }
  }

  /**
   * Acts on every cancel, input and handover request meant for this node.
   *
   * @returns whether it acted on any, and whether it acted on every one listed
   */
  async #serveRequests(): Promise<{ acted: boolean; served: boolean }> {
    const nodes = this.#deps.store.nodes;
    let listed = 0;
    let acted = 0;
    for (const [jobId, request] of await nodes.cancelRequests()) {
      listed++;
      if (!this.#deps.live.get(jobId)) continue;
      this.#deps.cancelLocal(jobId, request.reason, request.details);
      await nodes.dropCancel(jobId);
      acted++;
    }
    for (const pending of await nodes.inputRequests()) {
      listed++;
      if (!this.#deps.live.get(pending.jobId)) continue;
      if (!await nodes.takeInput(pending.jobId, pending.id, pending.versionstamp)) continue;
      const { request } = pending;
      const answer: InputAnswer = await this.#deps.deliverInput(
        { sessionId: request.session_id, principal: request.principal },
        {
          job_id: pending.jobId,
          ...(request.content !== undefined ? { content: request.content } : {}),
          ...(request.end ? { end: true } : {}),
        },
      ).then((seq) => ({ input_seq: seq }), (err) => ({ error: toArcpError(err).toPayload() }));
      await nodes.answerInput(pending.id, answer);
      acted++;
    }
    for (const [sessionId, request] of await nodes.handovers()) {
      listed++;
      if (request.to === this.run) continue;
      const holder = (await this.#deps.store.getSession(sessionId))?.node_run;
      if (holder !== this.run) continue;
      await this.#deps.release(sessionId, request.to);
      await nodes.dropHandover(sessionId);
      acted++;
    }
    return { acted: acted > 0, served: acted === listed };
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
