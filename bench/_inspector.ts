/**
 * A bench's view into a child runtime through V8's inspector (the child
 * runs with `--inspect=127.0.0.1:0`): a full garbage collection before a
 * memory reading, so the reading counts what is alive rather than however
 * much garbage the last GC happened to leave, and the JS heap in use.
 *
 * @module
 */

/** One inspector session on a child process. */
export class Inspector {
  #socket: WebSocket;
  #nextId = 0;
  #waiting = new Map<number, (result: Record<string, unknown>) => void>();

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (e) => {
      const message = JSON.parse(e.data);
      this.#waiting.get(message.id)?.(message.result ?? {});
      this.#waiting.delete(message.id);
    };
  }

  /**
   * Connects to the inspector a child announced on its output.
   *
   * @param output what the child printed so far (Deno's `Debugger listening on ws://…` line)
   * @returns the session
   * @throws {Error} when the child announced no inspector
   */
  static async open(output: string): Promise<Inspector> {
    const url = output.match(/Debugger listening on (ws:\/\/\S+)/)?.[1];
    if (!url) throw new Error("the child runs without --inspect");
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    return new Inspector(socket);
  }

  #call(method: string): Promise<Record<string, unknown>> {
    const id = ++this.#nextId;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      this.#socket.send(JSON.stringify({ id, method }));
    });
  }

  /**
   * Runs full garbage collections in the child (two: the first one's
   * finalizers free more for the second).
   *
   * @returns resolves once both ran
   */
  async collectGarbage(): Promise<void> {
    await this.#call("HeapProfiler.collectGarbage");
    await this.#call("HeapProfiler.collectGarbage");
  }

  /**
   * The child's JS heap in use (bytes).
   *
   * @returns V8's used heap size
   */
  async heapUsed(): Promise<number> {
    return Number((await this.#call("Runtime.getHeapUsage")).usedSize);
  }

  /** Ends the session (the child keeps running). */
  close(): void {
    this.#socket.close();
  }
}
