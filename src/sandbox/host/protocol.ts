/**
 * What the runtime and a sandbox process say to each other over the control
 * socket, as length-prefixed JSON frames (`frames.ts`). The process reads
 * one {@linkcode HostIntro} line on stdin before any worker exists, connects
 * to the socket, presents the token and waits for the runtime's answer; only
 * then does it take commands. Each process runs one worker, which serves one
 * job (the default), or successive or concurrent jobs of one key (an agent's
 * `reuse` and `concurrency`), each named by its slot.
 *
 * @module
 */
import type { WorkerPermissions } from "../permissions.ts";
import type { HostMessage } from "../worker/wire.ts";
import { MAX_MESSAGE_BYTES } from "../worker/limits.ts";

/** The one line the runtime writes on a sandbox process's stdin, then closes it. */
export interface HostIntro {
  /** The control socket's path. */
  path: string;
  /** What the process presents when it connects. */
  token: string;
  /** What the runtime answers; proves to the process that it reached the runtime. */
  answer: string;
  /** The process's memory ceiling (bytes): a resident set above it is reported at every sample. */
  ceiling: number;
}

/** Runtime → process. */
export type HostCommand =
  | { c: "answer"; answer: string }
  | {
    /** Starts the process's one worker, before or with its first job. */
    c: "launch";
    agentUrl: string;
    permissions: WorkerPermissions;
    /** The lease's `net.fetch` globs, which the process's egress proxy enforces. */
    egress: readonly string[];
    /** How often the worker beats (ms), from its warm-up on. */
    beatMs: number;
  }
  | { c: "post"; msg: HostMessage }
  /**
   * The worker's job ended with a result: retire that worker and start
   * another like it for the next job of the same key.
   */
  | { c: "next" }
  /**
   * Ready up to `n` more fresh workers of the template, one at a time, for
   * this key's next jobs (each still serves one job); a `next` stops the
   * top-up until the runtime asks again.
   */
  | { c: "spare"; n: number };

/** Process → runtime. */
export type HostReport =
  | { token: string }
  /** A message the worker posted, relayed unchecked but within the size caps. */
  | { m: unknown }
  /**
   * The worker failed or broke the relay's rules; `cap` names the limit it
   * hit. With `j`, only that job did, and the worker is otherwise unharmed.
   */
  | { crash: string; cap?: string; j?: number }
  /** The whole process's resident set, bytes (ArrayBuffers and wasm memory included). */
  | { rss: number }
  /**
   * A fresh worker replaced the last one (after `next`): a new one, or a
   * spare; `workers` is how many worker threads the process holds now.
   */
  | { recycled: true; workers?: number }
  /** Spares ready now (after each change). */
  | { spares: number };

/**
 * How often a process samples its resident set (ms). Its main isolate
 * measures (no permission needed, unlike another process's `/proc` entry,
 * which Deno opens only with `--allow-all`); the runtime judges.
 */
export const RSS_REPORT_MS = 200;

/**
 * How far a sample must move from the last one reported before it is
 * reported (bytes). An idle process's resident set moves by a few KiB a
 * sample, and reporting each woke both processes' main threads 5 times a
 * second; a sample above the ceiling is reported whatever it moved.
 */
export const RSS_REPORT_STEP = 1024 * 1024;

/**
 * Whether a resident-set sample is reported to the runtime: one above the
 * ceiling always (the runtime ends the process on it, exactly as soon as
 * when every sample was reported), the first, and one that moved at least
 * {@linkcode RSS_REPORT_STEP} from the last reported (so what operators see
 * is never further off than that).
 *
 * @example
 * ```ts
 * import { rssDue } from "./protocol.ts";
 * console.log(rssDue(60e6, 60.1e6, 640 * 1024 * 1024)); // false
 * console.log(rssDue(700e6, 699.9e6, 640 * 1024 * 1024)); // true
 * ```
 *
 * @param rss the sample (bytes)
 * @param last the last reported (bytes), or undefined before the first
 * @param ceiling the process's memory ceiling (bytes)
 * @returns true when the sample goes to the runtime
 */
export function rssDue(rss: number, last: number | undefined, ceiling: number): boolean {
  return last === undefined || rss > ceiling || Math.abs(rss - last) >= RSS_REPORT_STEP;
}

/** Largest frame the runtime reads from a process: a capped message plus its envelope. */
export const MAX_REPORT_FRAME_BYTES: number = MAX_MESSAGE_BYTES + 64 * 1024;

/** Largest frame a process reads from the runtime (a job's start carries its input). */
export const MAX_COMMAND_FRAME_BYTES: number = 32 * 1024 * 1024;

/** Longest intro line a process reads from stdin. */
export const MAX_INTRO_BYTES = 8192;
