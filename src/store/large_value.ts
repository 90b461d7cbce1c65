/**
 * Text values larger than one KV value (64 KiB) are stored as a head entry
 * `{parts: n}` at the key and the text in `n` parts at `[...key, i]`, so a
 * prefix listing returns them in order right after the head.
 *
 * @module
 */
import { type DamageKind, StoreDamageError, unreadable } from "./damage.ts";

/**
 * Characters per part. V8 stores a string with any non-Latin-1 character as
 * UTF-16, two bytes a character, so 30,000 characters stay under 64 KiB.
 */
export const PART_CHARS = 30_000;

/** A write for the group committer. */
export interface KvWrite {
  /** The key. */
  key: Deno.KvKey;
  /** The value; omitted for a delete. */
  value?: unknown;
  /** Milliseconds until KV may drop the entry. */
  expireIn?: number;
}

/** The head entry of a value stored in parts. */
interface PartsHead {
  parts: number;
}

/**
 * The writes that store `text` at `key`, split when it is large.
 *
 * @param key where to store it
 * @param text the text
 * @param expireIn optional time to live in ms
 * @returns one write for a small text, else the head and its parts
 */
export function textWrites(key: Deno.KvKey, text: string, expireIn?: number): KvWrite[] {
  if (text.length <= PART_CHARS) return [{ key, value: text, expireIn }];
  const writes: KvWrite[] = [];
  const n = Math.ceil(text.length / PART_CHARS);
  writes.push({ key, value: { parts: n } satisfies PartsHead, expireIn });
  for (let i = 0; i < n; i++) {
    writes.push({
      key: [...key, i],
      value: text.slice(i * PART_CHARS, (i + 1) * PART_CHARS),
      expireIn,
    });
  }
  return writes;
}

/**
 * Reassembles texts written with {@linkcode textWrites} from the entries of
 * one log, read in key order, and finds what does not fit: a head that is
 * neither a text nor `{parts}`, a part missing or without its head, a head
 * whose parts never all arrive.
 *
 * @example
 * ```ts
 * import { TextAssembler, textWrites } from "./large_value.ts";
 * const problems: string[] = [];
 * const assembler = new TextAssembler("log", (e) => problems.push(e.message));
 * for (const w of textWrites(["log", 0], "x".repeat(70_000))) {
 *   const done = assembler.add(w.key.slice(1), w.value);
 *   if (done) console.log(done[0], done[1].length); // 0 70000
 * }
 * assembler.end();
 * ```
 */
export class TextAssembler {
  #what: string;
  #problem: (error: StoreDamageError) => void;
  #pending: { n: number; parts: string[]; want: number } | undefined;

  /**
   * Creates an assembler for one log.
   *
   * @param what the log, for messages (e.g. `session log of sess_…`)
   * @param problem told of each problem; reading goes on after it returns
   */
  constructor(what: string, problem: (error: StoreDamageError) => void) {
    this.#what = what;
    this.#problem = problem;
  }

  /**
   * One entry of the log.
   *
   * @param tail its key after the log's prefix: `[n]` for a head, `[n, i]` for a part
   * @param value its value
   * @returns `[n, text]` once a text is whole
   */
  add(tail: Deno.KvKey, value: unknown): [number, string] | undefined {
    const [n, i] = tail;
    if (typeof n !== "number" || tail.length > 2 || (tail.length === 2 && typeof i !== "number")) {
      this.#fail("malformed", `an entry of ${this.#what} has an unexpected key`, { key: tail });
      return undefined;
    }
    if (tail.length === 1) {
      this.#unfinished();
      if (typeof value === "string") return [n, value];
      const parts = (value as Partial<PartsHead> | null)?.parts;
      if (Number.isInteger(parts) && parts! > 0) {
        this.#pending = { n, parts: [], want: parts! };
      } else {
        this.#fail("malformed", `entry ${n} of ${this.#what} is neither a text nor a parts head`, {
          entry: n,
        });
      }
      return undefined;
    }
    const pending = this.#pending;
    if (!pending || pending.n !== n) {
      this.#unfinished();
      this.#fail("missing", `entry ${n} of ${this.#what} has parts but no head`, { entry: n });
      return undefined;
    }
    if (i !== pending.parts.length || typeof value !== "string") {
      this.#pending = undefined;
      this.#fail(
        typeof value === "string" ? "missing" : "malformed",
        `entry ${n} of ${this.#what}: part ${pending.parts.length} of ${pending.want} ${
          typeof value === "string" ? "is missing" : "is not a text"
        }`,
        { entry: n },
      );
      return undefined;
    }
    pending.parts.push(value);
    if (pending.parts.length < pending.want) return undefined;
    this.#pending = undefined;
    return [n, pending.parts.join("")];
  }

  /** The log has ended: a text still waiting for parts is a problem. */
  end(): void {
    this.#unfinished();
  }

  #unfinished(): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = undefined;
    this.#fail(
      "missing",
      `entry ${pending.n} of ${this.#what} has ${pending.parts.length} of its ${pending.want} parts`,
      { entry: pending.n },
    );
  }

  #fail(kind: DamageKind, message: string, details: Record<string, unknown>): void {
    this.#problem(new StoreDamageError(kind, message, details));
  }
}

/**
 * Reads back texts written with {@linkcode textWrites} under a prefix whose
 * entries are `[...prefix, n]`, in key order. Damage ends the listing with a
 * {@linkcode StoreDamageError}: a read KV refuses, or entries that do not
 * reassemble (see {@linkcode TextAssembler}); nothing is skipped silently.
 *
 * @param kv the database
 * @param prefix the log's prefix; entries are `[...prefix, n]`
 * @param after list entries with `n > after`
 * @param what the log, for messages
 * @returns `[n, text]` pairs, the last key part and the whole text
 * @throws {StoreDamageError} at the first damage
 */
export async function* listTexts(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  after = -1,
  what = "log",
): AsyncGenerator<[number, string]> {
  const selector = { prefix, start: [...prefix, after + 1] };
  const assembler = new TextAssembler(what, (error) => {
    throw error;
  });
  const entries = kv.list<unknown>(selector, { batchSize: 500 })[Symbol.asyncIterator]();
  let last = after;
  while (true) {
    let next: IteratorResult<Deno.KvEntry<unknown>>;
    try {
      next = await entries.next();
    } catch (err) {
      throw unreadable(`${what} after entry ${last}`, err, { after: last });
    }
    if (next.done) break;
    const whole = assembler.add(next.value.key.slice(prefix.length), next.value.value);
    if (whole) {
      last = whole[0];
      yield whole;
    }
  }
  assembler.end();
}
