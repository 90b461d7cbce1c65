/**
 * One job's `job.event` envelopes and outcome, as a caller sees them: events
 * are buffered until read, in arrival order, and the stream ends with the
 * job's terminal message.
 *
 * @module
 */
import type { ArcpClientError } from "./errors.ts";
import type { JobEventEnvelope, JobResultPayload } from "./payloads.ts";

/** A job's events and its outcome. */
export interface JobEvents {
  /**
   * The job's `job.event` envelopes in `event_seq` order, buffered from the
   * start. Iteration ends when the job ends (however it ended); it throws
   * only when the connection is lost first. One iterator per job.
   *
   * @returns the iterator
   * @throws {TypeError} when called a second time
   */
  events(): AsyncIterableIterator<JobEventEnvelope>;
  /**
   * Resolves with the `job.result` payload; rejects with a
   * `JobFailedError` on the job's `job.error`, or an `ArcpClientError`
   * (`CONNECTION_CLOSED`, `SEQUENCE_GAP`) when the connection is lost first.
   */
  readonly result: Promise<JobResultPayload>;
}

/** The client's side of a {@linkcode JobEvents}: it pushes, the caller reads. */
export class JobStream implements JobEvents {
  /** See {@linkcode JobEvents.result}. */
  readonly result: Promise<JobResultPayload>;
  #settle: PromiseWithResolvers<JobResultPayload>;
  #buffer: JobEventEnvelope[] = [];
  #readers: PromiseWithResolvers<IteratorResult<JobEventEnvelope>>[] = [];
  #state: "open" | "ended" | "lost" = "open";
  #lost: ArcpClientError | undefined;
  #claimed = false;
  #dropped = false;

  /** Creates an open stream with nothing buffered. */
  constructor() {
    this.#settle = Promise.withResolvers<JobResultPayload>();
    this.result = this.#settle.promise;
    // A caller that only iterates events must not get an unhandled rejection.
    this.result.catch(() => {});
  }

  /** Whether the job's terminal message arrived. */
  get ended(): boolean {
    return this.#state === "ended";
  }

  /**
   * Adds an event.
   *
   * @param event the envelope
   */
  push(event: JobEventEnvelope): void {
    if (this.#state !== "open" || this.#dropped) return;
    const reader = this.#readers.shift();
    if (reader) reader.resolve({ value: event, done: false });
    else this.#buffer.push(event);
  }

  /**
   * The job ended: settles the result and ends the events.
   *
   * @param outcome the `job.result` payload, or the error the result rejects with
   */
  end(outcome: JobResultPayload | ArcpClientError): void {
    if (this.#state !== "open") return;
    this.#state = "ended";
    this.#finish(outcome);
  }

  /**
   * The connection was lost before the job ended: the result rejects and the
   * events iterator throws after what was buffered.
   *
   * @param error why
   */
  lose(error: ArcpClientError): void {
    if (this.#state !== "open") return;
    this.#state = "lost";
    this.#lost = error;
    this.#finish(error);
  }

  /**
   * See {@linkcode JobEvents.events}.
   *
   * @returns the iterator
   */
  events(): AsyncIterableIterator<JobEventEnvelope> {
    if (this.#claimed) throw new TypeError("events() was already called for this job");
    this.#claimed = true;
    const iterator: AsyncIterableIterator<JobEventEnvelope> = {
      next: () => this.#next(),
      return: () => {
        this.#dropped = true;
        this.#buffer = [];
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  #finish(outcome: JobResultPayload | ArcpClientError): void {
    if (outcome instanceof Error) this.#settle.reject(outcome);
    else this.#settle.resolve(outcome);
    // A waiting reader means the buffer is empty, so the loss is due now.
    for (const reader of this.#readers.splice(0)) {
      const lost = this.#lost;
      this.#lost = undefined;
      if (lost) reader.reject(lost);
      else reader.resolve({ value: undefined, done: true });
    }
  }

  #next(): Promise<IteratorResult<JobEventEnvelope>> {
    const value = this.#buffer.shift();
    if (value) return Promise.resolve({ value, done: false });
    if (this.#dropped) return Promise.resolve({ value: undefined, done: true });
    if (this.#state !== "open") {
      const lost = this.#lost;
      // Throw once; a caller that keeps calling next() then sees the end.
      this.#lost = undefined;
      return lost ? Promise.reject(lost) : Promise.resolve({ value: undefined, done: true });
    }
    const reader = Promise.withResolvers<IteratorResult<JobEventEnvelope>>();
    this.#readers.push(reader);
    return reader.promise;
  }
}
