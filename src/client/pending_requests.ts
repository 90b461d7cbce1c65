/**
 * Requests awaiting the runtime's answer. The runtime answers a session's
 * requests in the order it received them, so requests that share a key
 * (a trace id, a job id) queue and are matched oldest first.
 *
 * @module
 */

/** Pending requests, queued per key in the order they were sent. */
export class PendingRequests<K, T> {
  #queues = new Map<K, T[]>();

  /**
   * Queues a request.
   *
   * @param key what its answer will name
   * @param request the request
   */
  add(key: K, request: T): void {
    const queue = this.#queues.get(key);
    if (queue) queue.push(request);
    else this.#queues.set(key, [request]);
  }

  /**
   * The oldest request under a key, left in place.
   *
   * @param key the key
   * @returns the request, or undefined when none waits
   */
  peek(key: K): T | undefined {
    return this.#queues.get(key)?.[0];
  }

  /**
   * Removes and returns the oldest request under a key: its answer came.
   *
   * @param key the key
   * @returns the request, or undefined when none waits
   */
  take(key: K): T | undefined {
    const queue = this.#queues.get(key);
    const request = queue?.shift();
    if (queue?.length === 0) this.#queues.delete(key);
    return request;
  }

  /**
   * Removes and returns every request under a key: one answer settles them all.
   *
   * @param key the key
   * @returns the requests, oldest first
   */
  drain(key: K): T[] {
    const queue = this.#queues.get(key) ?? [];
    this.#queues.delete(key);
    return queue;
  }

  /**
   * Removes one request wherever it is in its key's queue.
   *
   * @param key the key
   * @param request the request
   */
  remove(key: K, request: T): void {
    const queue = this.#queues.get(key);
    const at = queue?.indexOf(request) ?? -1;
    if (at < 0) return;
    queue!.splice(at, 1);
    if (queue!.length === 0) this.#queues.delete(key);
  }

  /**
   * Empties the table: every request is failed or settled at once.
   *
   * @returns each request with its key, oldest first per key
   */
  drainAll(): [K, T][] {
    const all = [...this.#queues].flatMap(([key, queue]) => queue.map((r): [K, T] => [key, r]));
    this.#queues.clear();
    return all;
  }
}
