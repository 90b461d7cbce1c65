/**
 * Reassembly of a streamed result (ARCP.md §5.6): the `result_chunk` events
 * of one `result_id`, checked for order and completeness, decoded and
 * joined once the job's `job.result` says how many bytes there must be.
 *
 * @module
 */
import * as decode from "./decode.ts";
import { ArcpClientError } from "./errors.ts";
import type { JobResultPayload } from "./payloads.ts";

const encoder = new TextEncoder();

/**
 * Collects one job's result chunks, from the moment a caller asked for the
 * assembled result. Each chunk is decoded as it arrives (so its text can be
 * freed once the caller has read the event); the pieces are joined when the
 * job ends. Nothing settles before the job ends: a job that fails rejects
 * with its own error even when its chunks had gone wrong first.
 */
export class ResultAssembly {
  /** Settles with the assembled bytes, or the reason there are none. */
  readonly bytes: Promise<Uint8Array<ArrayBuffer>>;
  #answer: PromiseWithResolvers<Uint8Array<ArrayBuffer>>;
  #pieces: Uint8Array<ArrayBuffer>[] = [];
  #size = 0;
  #resultId: string | undefined;
  #next = 0;
  #last = false;
  #settled = false;
  /** The first thing that went wrong; the pieces are dropped then. */
  #problem: ArcpClientError | undefined;

  /** Creates an assembly with nothing collected. */
  constructor() {
    this.#answer = Promise.withResolvers<Uint8Array<ArrayBuffer>>();
    this.bytes = this.#answer.promise;
    // A caller that asks early and awaits later must not get an unhandled rejection.
    this.bytes.catch(() => {});
  }

  /**
   * Takes the next `result_chunk` body.
   *
   * @param body the event's body, as received
   */
  add(body: Record<string, unknown>): void {
    if (this.#settled || this.#problem) return;
    const chunk = decode.resultChunk(body);
    if (!chunk) return this.#malformed("a result_chunk event has a malformed body");
    if (this.#resultId === undefined) {
      if (chunk.chunk_seq !== 0) {
        return this.#unavailable(
          "missed",
          `the first result_chunk seen here is #${chunk.chunk_seq}: the chunks before it ` +
            "never reached this stream (it followed the job after they went out)",
        );
      }
      this.#resultId = chunk.result_id;
    } else if (chunk.result_id !== this.#resultId) {
      return this.#malformed(
        `result_chunk of ${chunk.result_id} after chunks of ${this.#resultId}`,
        { result_id: this.#resultId, received: chunk.result_id },
      );
    }
    if (this.#last) {
      return this.#malformed(`result_chunk #${chunk.chunk_seq} after the last chunk`);
    }
    if (chunk.chunk_seq !== this.#next) {
      return this.#malformed(
        `result_chunk #${chunk.chunk_seq} where #${this.#next} was due`,
        { expected: this.#next, received: chunk.chunk_seq },
      );
    }
    let piece: Uint8Array<ArrayBuffer>;
    try {
      piece = chunk.encoding === "utf8"
        ? encoder.encode(chunk.data)
        : Uint8Array.fromBase64(chunk.data);
    } catch (err) {
      return this.#malformed(`result_chunk #${chunk.chunk_seq} is not valid base64`, {}, err);
    }
    this.#pieces.push(piece);
    this.#size += piece.length;
    this.#next++;
    this.#last = !chunk.more;
  }

  /**
   * The job succeeded: checks the chunks against its `job.result` and
   * settles with their concatenation.
   *
   * @param result the `job.result` payload
   */
  finish(result: JobResultPayload): void {
    if (this.#settled) return;
    if (this.#problem) return this.fail(this.#problem);
    this.#check(result);
    if (this.#problem) return this.fail(this.#problem);
    this.#settle(join(this.#pieces, this.#size));
  }

  #check(result: JobResultPayload): void {
    if (result.result_id === undefined) {
      return this.#next === 0
        ? this.#unavailable("inline", "the job's result came inline, not as result_chunk events")
        : this.#malformed("job.result carries an inline result after result_chunk events");
    }
    if (this.#next === 0) {
      return this.#unavailable(
        "not_delivered",
        `no result_chunk of ${result.result_id} reached this stream: the session did not ` +
          "negotiate result_chunk, or the stream followed the job after its chunks went out",
        { result_id: result.result_id },
      );
    }
    if (result.result_id !== this.#resultId) {
      return this.#malformed(
        `job.result names ${result.result_id}, the chunks ${this.#resultId}`,
        { result_id: this.#resultId, received: result.result_id },
      );
    }
    if (!this.#last) {
      return this.#malformed(
        `job.result came before the last result_chunk (${this.#next} chunks, the last with more: true)`,
      );
    }
    if (result.result_size !== this.#size) {
      return this.#malformed(
        `the chunks hold ${this.#size} bytes, job.result says result_size ${result.result_size}`,
        { result_size: result.result_size ?? null, received: this.#size },
      );
    }
  }

  /**
   * The job failed, or the stream was lost or unsubscribed: no result.
   *
   * @param error what the job's `result` rejects with
   */
  fail(error: ArcpClientError): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#pieces = [];
    this.#answer.reject(error);
  }

  #settle(bytes: Uint8Array<ArrayBuffer>): void {
    this.#settled = true;
    this.#pieces = [];
    this.#answer.resolve(bytes);
  }

  /**
   * Chunks went by before collection started: once the job succeeds, the
   * result rejects with `RESULT_UNAVAILABLE` (reason `not_collected`).
   */
  missed(): void {
    this.#unavailable(
      "not_collected",
      "result_chunk events were taken from events() (read, or dropped with its iterator) " +
        "before resultBytes() or resultText() was first called; call it first",
    );
  }

  #malformed(message: string, details: Record<string, unknown> = {}, cause?: unknown): void {
    this.#fault(
      new ArcpClientError("RESULT_MALFORMED", `streamed result: ${message}`, {
        details: this.#withId(details),
        cause,
      }),
    );
  }

  #unavailable(reason: string, message: string, details: Record<string, unknown> = {}): void {
    this.#fault(
      new ArcpClientError("RESULT_UNAVAILABLE", `streamed result: ${message}`, {
        details: this.#withId({ reason, ...details }),
      }),
    );
  }

  /** Keeps the first problem and drops what was collected. */
  #fault(error: ArcpClientError): void {
    this.#problem ??= error;
    this.#pieces = [];
  }

  #withId(details: Record<string, unknown>): Record<string, unknown> {
    return this.#resultId === undefined || "result_id" in details
      ? details
      : { result_id: this.#resultId, ...details };
  }
}

function join(pieces: Uint8Array<ArrayBuffer>[], size: number): Uint8Array<ArrayBuffer> {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}
