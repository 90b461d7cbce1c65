/**
 * Input to running jobs (vendor feature `x-arcp-deno.input`) and their
 * transcripts. An input is recorded in the job's own history as a `job.event`
 * of kind `x-vendor.arcp-deno.input` (so its order with the job's outputs is
 * the history's order, durable in KV and swept with it) and queued in memory
 * until the agent reads it with `ctx.input()`. The queue is bounded: a send
 * past it is refused with a retryable error before anything is recorded, so
 * an input is either recorded and delivered or refused, never dropped.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import type { JobEventPayload } from "../protocol/events.ts";
import {
  type Input,
  INPUT_KIND,
  type InputEventBody,
  type Transcript,
  type TranscriptItem,
  type TranscriptPage,
} from "../protocol/job_input.ts";
import { TERMINAL_STATUSES } from "../protocol/messages.ts";
import type { Store } from "../store/store.ts";
import type { JobRecord } from "../store/records.ts";
import type { EmitEvent } from "./fanout.ts";
import type { JobTable } from "./job_table.ts";
import type { LiveJob } from "./live_job.ts";
import { utf8Length } from "./result_stream.ts";

/** Marks the end of a job's input in its queue. */
const END: unique symbol = Symbol("end of input");

/** One job's inputs the agent has not read yet, and the reads waiting for one. */
interface InputQueue {
  items: Array<unknown>;
  waiters: Array<PromiseWithResolvers<unknown>>;
  /** `input_seq` of the last input accepted. */
  seq: number;
  /** An input with `end` was accepted: no more are. */
  ended: boolean;
}

/** Who sends an input. */
export interface InputSender {
  /** The sending session. */
  sessionId: string;
  /** Its principal. */
  principal: string;
}

/** What {@linkcode JobInputs} needs. */
export interface JobInputsDeps {
  /** Where job records and histories are. */
  store: Store;
  /** The live jobs. */
  live: JobTable;
  /** Emits a `job.event` through the fan-out. */
  event: EmitEvent;
  /**
   * Whether a job not live here is owned by another node run.
   *
   * @param job the job's record
   * @returns true when another node runs it
   */
  elsewhere(job: JobRecord): boolean;
  /**
   * Forwards an input to the node running its job (see `Cluster.forwardInput`).
   *
   * @param job the job
   * @param who the sender
   * @param req the input
   * @returns its `input_seq`, once that node recorded it
   */
  forward(job: JobRecord, who: InputSender, req: Input): Promise<number>;
}

/** The input limits (see `JobLimits`). */
export interface InputLimits {
  /** Largest serialized input, bytes. */
  maxInputBytes: number;
  /** Unread inputs a job may hold. */
  maxQueuedInputs: number;
}

/** Default page size of a transcript read. */
const DEFAULT_PAGE = 100;

/** Accepts inputs for live jobs, hands them to their agents, and reads transcripts. */
export class JobInputs {
  #deps: JobInputsDeps;
  #limits: InputLimits;
  #queues = new WeakMap<LiveJob, InputQueue>();

  /**
   * @param deps the store, the live jobs and how to emit
   * @param limits the size and queue caps
   */
  constructor(deps: JobInputsDeps, limits: InputLimits) {
    this.#deps = deps;
    this.#limits = limits;
  }

  /**
   * Records an input in the job's history and queues it for the agent.
   *
   * @param who the sending session (only the submitting session may send)
   * @param req the decoded request
   * @returns the input's `input_seq`, once the history entry is committed
   *   (for a job running on another node: once that node committed it)
   * @throws {ArcpError} `JOB_NOT_FOUND`; `PERMISSION_DENIED` (another
   *   principal's job, or another session's); `INVALID_REQUEST` (the job has
   *   ended or is cancelling, its input was ended, the input is over the size
   *   cap); `INTERNAL_ERROR` retryable with `details.cap: "input_queue"` when
   *   the agent has not read the inputs already queued
   */
  async send(who: InputSender, req: Input): Promise<number> {
    const jobId = req.job_id;
    const live = this.#deps.live.get(jobId);
    const job = live?.record ?? await this.#deps.store.getJob(jobId);
    if (!job) throw new ArcpError("JOB_NOT_FOUND", `no job ${jobId}`, { job_id: jobId });
    if (job.principal !== who.principal) {
      throw new ArcpError(
        "PERMISSION_DENIED",
        "only the principal that submitted a job may send it input",
        { job_id: jobId },
      );
    }
    // Running on another node: that node records it (after the same checks there).
    if (!live && !TERMINAL_STATUSES.has(job.status) && this.#deps.elsewhere(job)) {
      if (job.session_id !== who.sessionId) {
        throw new ArcpError(
          "PERMISSION_DENIED",
          "only the session that submitted a job may send it input (resume that session)",
          { job_id: jobId },
        );
      }
      return await this.#deps.forward(job, who, req);
    }
    // An ended job says so to any session of its principal, which may list it anyway.
    if (!live || live.ended || live.terminated || TERMINAL_STATUSES.has(job.status)) {
      throw new ArcpError(
        "INVALID_REQUEST",
        `job ${jobId} has ended (${job.status}); it takes no more input`,
        { job_id: jobId, status: job.status },
      );
    }
    if (job.session_id !== who.sessionId) {
      throw new ArcpError(
        "PERMISSION_DENIED",
        "only the session that submitted a job may send it input (resume that session)",
        { job_id: jobId },
      );
    }
    if (live.cancelling) {
      throw new ArcpError(
        "INVALID_REQUEST",
        `job ${jobId} is being cancelled; it takes no more input`,
        { job_id: jobId, status: "cancelling" },
      );
    }
    const size = req.content === undefined ? 0 : utf8Length(JSON.stringify(req.content));
    if (size > this.#limits.maxInputBytes) {
      throw new ArcpError(
        "INVALID_REQUEST",
        `content: ${size} bytes; the input cap is ${this.#limits.maxInputBytes}`,
        { job_id: jobId, cap: "input_bytes", limit: this.#limits.maxInputBytes, size },
      );
    }
    const q = this.#queue(live);
    if (q.ended) {
      throw new ArcpError(
        "INVALID_REQUEST",
        `the input of job ${jobId} was ended; it takes no more`,
        { job_id: jobId },
      );
    }
    if (q.items.length >= this.#limits.maxQueuedInputs) {
      throw new ArcpError(
        "INTERNAL_ERROR",
        `job ${jobId} has ${q.items.length} inputs its agent has not read yet; send again once it reads them`,
        { job_id: jobId, cap: "input_queue", limit: this.#limits.maxQueuedInputs },
      );
    }
    const seq = ++q.seq;
    const body: InputEventBody = {
      input_seq: seq,
      ...(req.content !== undefined ? { content: req.content } : {}),
      ...(req.end ? { end: true as const } : {}),
    };
    // The history position is taken now, so the agent's replies come after it in the transcript.
    const committed = this.#deps.event(live, INPUT_KIND, body);
    if (req.content !== undefined) this.#put(q, req.content);
    if (req.end) {
      q.ended = true;
      this.#put(q, END);
    }
    await committed;
    return seq;
  }

  /**
   * The agent's next input (`ctx.input()`).
   *
   * @param live the reading job
   * @returns the content, or undefined once the input was ended and read
   * @throws {ArcpError} `CANCELLED` when the job ends while waiting
   */
  take(live: LiveJob): Promise<unknown> {
    const q = this.#queue(live);
    if (q.items.length > 0) {
      const item = q.items[0];
      // The end stays queued: every later read sees it too.
      if (item === END) return Promise.resolve(undefined);
      q.items.shift();
      return Promise.resolve(item);
    }
    const signal = live.abort.signal;
    if (signal.aborted) return Promise.reject(ended(live));
    const waiter = Promise.withResolvers<unknown>();
    q.waiters.push(waiter);
    const onEnd = () => waiter.reject(ended(live));
    signal.addEventListener("abort", onEnd, { once: true });
    return waiter.promise.finally(() => signal.removeEventListener("abort", onEnd));
  }

  /**
   * One page of a job's transcript: its history entries (inputs, events,
   * the terminal) after a cursor, as long as retention keeps them.
   *
   * @param principal the reading principal (only the submitter's may read)
   * @param req the decoded request
   * @returns the page, without `request_id`
   * @throws {ArcpError} `JOB_NOT_FOUND` or `PERMISSION_DENIED`
   */
  async transcript(
    principal: string,
    req: Transcript,
  ): Promise<Omit<TranscriptPage, "request_id">> {
    const jobId = req.job_id;
    const { store } = this.#deps;
    // Everything emitted so far must be in KV before its history is read.
    await store.write([]);
    const job = await store.getJob(jobId);
    if (!job) throw new ArcpError("JOB_NOT_FOUND", `no job ${jobId}`, { job_id: jobId });
    if (job.principal !== principal) {
      throw new ArcpError(
        "PERMISSION_DENIED",
        "only the principal that submitted a job may read its transcript",
        { job_id: jobId },
      );
    }
    const after = req.after ?? -1;
    const limit = req.limit ?? DEFAULT_PAGE;
    const items: TranscriptItem[] = [];
    let more = false;
    for await (const [index, text] of store.jobLog(jobId, after)) {
      if (items.length === limit) {
        more = true;
        break;
      }
      const { type, payload } = JSON.parse(text) as Pick<TranscriptItem, "type" | "payload">;
      items.push({ index, type, payload });
    }
    const last = items.at(-1)?.index ?? after;
    const done = TERMINAL_STATUSES.has(job.status) && !more;
    return { job_id: jobId, status: job.status, items, next_after: done ? null : last };
  }

  #queue(live: LiveJob): InputQueue {
    let q = this.#queues.get(live);
    if (!q) this.#queues.set(live, q = { items: [], waiters: [], seq: 0, ended: false });
    return q;
  }

  #put(q: InputQueue, item: unknown): void {
    const waiter = q.waiters.shift();
    if (!waiter) q.items.push(item);
    else if (item === END) {
      waiter.resolve(undefined);
      for (const w of q.waiters.splice(0)) w.resolve(undefined);
      q.items.push(END);
    } else waiter.resolve(item);
  }
}

function ended(live: LiveJob): ArcpError {
  return new ArcpError("CANCELLED", `job ${live.record.job_id} ended while waiting for input`);
}

/**
 * Whether a `job.event` payload is an input the runtime recorded (not output:
 * it counts against no output quota).
 *
 * @param payload the payload
 * @returns true for an input
 */
export function isInputEvent(payload: unknown): boolean {
  return (payload as JobEventPayload | undefined)?.kind === INPUT_KIND;
}
