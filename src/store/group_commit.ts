/**
 * Group commit: writes queued in the same tick share one atomic KV commit,
 * so the durability rule (committed before sent) costs one fsync per batch
 * rather than one per event.
 *
 * @module
 */
import type { KvWrite } from "./large_value.ts";

/** Stay well inside KV's 1000 mutations and ~800 KiB per atomic operation. */
const MAX_MUTATIONS = 900;
const MAX_BYTES = 600_000;

interface Pending {
  writes: KvWrite[];
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Rough bytes a write adds to an atomic operation (UTF-16 worst case for text). */
function writeBytes(w: KvWrite): number {
  const v = w.value;
  const valueBytes = typeof v === "string"
    ? v.length * 2
    : v === undefined
    ? 0
    : JSON.stringify(v).length * 2;
  return valueBytes + 64 * w.key.length;
}

/**
 * Batches writes into atomic commits, one batch in flight at a time, so
 * commits (and what waits on them) complete in the order they were queued.
 */
export class GroupCommitter {
  #kv: Deno.Kv;
  #queue: Pending[] = [];
  #running = false;
  #idle: Array<() => void> = [];
  /** Commits made so far (for benchmarks and tests). */
  commits = 0;

  /**
   * @param kv the database to commit to
   */
  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /**
   * Queues writes to be committed together with whatever else is queued.
   *
   * @param writes the writes; all of them land in the same atomic commit
   * @returns resolves once they are durable, rejects if the commit failed
   */
  write(writes: KvWrite[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const bytes = writes.reduce((n, w) => n + writeBytes(w), 0);
      this.#queue.push({ writes, bytes, resolve, reject });
      if (!this.#running) {
        this.#running = true;
        queueMicrotask(() => this.#drain());
      }
    });
  }

  /**
   * Waits until everything queued so far is committed.
   *
   * @returns resolves when the queue is empty
   */
  flush(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch: Pending[] = [];
      let mutations = 0;
      let bytes = 0;
      while (this.#queue.length > 0) {
        const next = this.#queue[0];
        const fits = mutations + next.writes.length <= MAX_MUTATIONS &&
          bytes + next.bytes <= MAX_BYTES;
        if (batch.length > 0 && !fits) break;
        batch.push(this.#queue.shift()!);
        mutations += next.writes.length;
        bytes += next.bytes;
      }
      try {
        await this.#commit(batch);
        this.commits++;
        for (const p of batch) p.resolve();
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    this.#running = false;
    const idle = this.#idle;
    this.#idle = [];
    for (const f of idle) f();
  }

  async #commit(batch: Pending[]): Promise<void> {
    // A later write to the same key in one batch replaces the earlier one.
    const byKey = new Map<string, KvWrite>();
    for (const p of batch) {
      for (const w of p.writes) {
        const id = JSON.stringify(w.key);
        byKey.delete(id);
        byKey.set(id, w);
      }
    }
    // Batches are cut to fit one atomic operation; only a single item larger
    // than that (a big streamed result chunk) needs several. Its envelope is
    // sent only after all of them land, so the durability rule still holds.
    let op = this.#kv.atomic();
    let mutations = 0;
    let bytes = 0;
    for (const w of byKey.values()) {
      const size = writeBytes(w);
      if (mutations > 0 && (mutations + 1 > MAX_MUTATIONS || bytes + size > MAX_BYTES)) {
        await this.#run(op);
        op = this.#kv.atomic();
        mutations = 0;
        bytes = 0;
      }
      if (w.value === undefined) op.delete(w.key);
      else op.set(w.key, w.value, w.expireIn ? { expireIn: w.expireIn } : undefined);
      mutations++;
      bytes += size;
    }
    if (mutations > 0) await this.#run(op);
  }

  async #run(op: Deno.AtomicOperation): Promise<void> {
    const res = await op.commit();
    if (!res.ok) throw new Error("KV commit was refused");
  }
}
