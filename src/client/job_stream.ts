/**
 * One job's `job.event` envelopes and outcome, as a caller sees them: events
 * are buffered until read, in arrival order, and the stream ends with the
 * job's terminal message. A streamed result (`result_chunk` events) is
 * reassembled for callers that ask for it.
 *
 * @module
 */
import type { ArcpClientError } from "./errors.ts";
import type { JobEventEnvelope, JobResultPayload } from "./payloads.ts";
import { ResultAssembly } from "./result_assembly.ts";

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
  /**
   * The job's streamed result (ARCP.md §5.6), reassembled: the decoded
   * `result_chunk` data (`utf8` as its UTF-8 bytes, `base64` decoded) in
   * `chunk_seq` order. Resolves after `job.result`, once the chunks are
   * checked: `chunk_seq` 0, 1, 2... without gaps, one `result_id` (the one
   * `job.result` names), the last with `more: false`, and exactly
   * `result_size` bytes in all.
   *
   * Chunks are kept only for a caller that asks: the first call starts
   * collecting, and takes the chunks that came before it from the
   * {@linkcode events} buffer, so it works at any time as long as no
   * `result_chunk` event has been read from (or dropped with) the events
   * iterator yet. Call it before reading the events, then read them as
   * you like. A caller that never calls it costs no memory for the result
   * beyond the events it has not read. Later calls return the same promise.
   *
   * @returns the result's bytes
   * @throws {JobFailedError} the job's failure, as {@linkcode result} rejects
   * @throws {ArcpClientError} `CONNECTION_CLOSED`, `SEQUENCE_GAP`, `UNSUBSCRIBED`
   *   as for {@linkcode result}; `RESULT_MALFORMED` when the chunks do not add
   *   up; `RESULT_UNAVAILABLE` when the job succeeded but there is nothing to
   *   assemble here (`details.reason`: `inline` result, chunks `not_delivered`
   *   because `result_chunk` was not negotiated, `missed` because the stream
   *   followed the job after its first chunks, `not_collected` because they were
   *   read from `events()` before the first call)
   */
  resultBytes(): Promise<Uint8Array<ArrayBuffer>>;
  /**
   * {@linkcode resultBytes} decoded as UTF-8 (invalid sequences become
   * U+FFFD, as `Response.text()` does).
   *
   * @returns the result's text
   * @throws {ArcpClientError} whatever {@linkcode resultBytes} rejects with
   */
  resultText(): Promise<string>;
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
  /** How the job ended, once it did. */
  #outcome: JobResultPayload | ArcpClientError | undefined;
  /** `result_chunk` events pushed so far, read or not. */
  #chunksSeen = 0;
  #assembly: ResultAssembly | undefined;
  #text: Promise<string> | undefined;

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
    if (this.#state !== "open") return;
    if (event.payload.kind === "result_chunk") {
      this.#chunksSeen++;
      this.#assembly?.add(event.payload.body);
    }
    if (this.#dropped) return;
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
   * See {@linkcode JobEvents.resultBytes}.
   *
   * @returns the result's bytes
   */
  resultBytes(): Promise<Uint8Array<ArrayBuffer>> {
    if (!this.#assembly) {
      const assembly = new ResultAssembly();
      const buffered = this.#buffer.filter((e) => e.payload.kind === "result_chunk");
      if (buffered.length < this.#chunksSeen) assembly.missed();
      for (const e of buffered) assembly.add(e.payload.body);
      if (this.#outcome instanceof Error) assembly.fail(this.#outcome);
      else if (this.#outcome) assembly.finish(this.#outcome);
      this.#assembly = assembly;
    }
    return this.#assembly.bytes;
  }

  /**
   * See {@linkcode JobEvents.resultText}.
   *
   * @returns the result's text
   */
  resultText(): Promise<string> {
    if (!this.#text) {
      this.#text = this.resultBytes().then((bytes) => new TextDecoder().decode(bytes));
      this.#text.catch(() => {});
    }
    return this.#text;
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
    this.#outcome = outcome;
    if (outcome instanceof Error) {
      this.#settle.reject(outcome);
      this.#assembly?.fail(outcome);
    } else {
      this.#settle.resolve(outcome);
      this.#assembly?.finish(outcome);
    }
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
