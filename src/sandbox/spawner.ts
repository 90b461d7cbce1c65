/**
 * Starts sandbox processes from a Worker of the runtime (`spawner_worker.ts`)
 * instead of the main thread. A process start blocks its caller until the
 * child has exec'd, which on a loaded machine means until the child got a
 * core: 0.5–80 ms per start, measured on the main thread during 11f, where
 * it delayed every session's pings and heartbeats. The main thread now only
 * posts a request and hears, later, the pid, the output lines and the exit.
 *
 * @module
 */
import type { OutputSink } from "./output_drain.ts";

/** A request to the spawner's thread. */
export type SpawnerRequest =
  | {
    t: "spawn";
    id: number;
    command: string;
    args: string[];
    /** The process's whole environment. */
    env: Record<string, string>;
    /** Written to its stdin, which is then closed; never in argv or a log. */
    stdinLine: string;
    /** How much lower its CPU priority is than the runtime's. */
    niceOffset: number;
  }
  | { t: "kill"; id: number };

/** What the spawner's thread reports about a process. */
export type SpawnerReport =
  | { t: "spawned"; id: number; pid: number }
  | { t: "line"; id: number; stream: "stdout" | "stderr"; text: string }
  | { t: "dropped"; id: number; stream: "stdout" | "stderr"; count: number }
  | { t: "flood"; id: number; stream: "stdout" | "stderr" }
  | {
    t: "exit";
    id: number;
    code: number;
    signal: Deno.Signal | null;
    /** The end of its stderr. */
    tail: string;
    /** Why it could not be started, when it was not. */
    error?: string;
  };

/** How a spawned process ended. */
export interface SpawnExit {
  /** Its exit code (-1 when it never started). */
  code: number;
  /** The signal that ended it, if one did. */
  signal: Deno.Signal | null;
  /** The last bytes of its stderr, decoded. */
  tail: string;
  /** Why it could not be started, when it was not. */
  error?: string;
}

/** What to start. */
export interface SpawnRequest {
  /** The executable. */
  command: string;
  /** Its arguments. */
  args: string[];
  /** Its whole environment. */
  env: Record<string, string>;
  /** One line for its stdin (closed after it). */
  stdinLine: string;
  /** How much lower its CPU priority is than the runtime's (its nice value, higher). */
  niceOffset: number;
  /** Where its stdout and stderr go. */
  stdout: OutputSink;
  /** See `stdout`. */
  stderr: OutputSink;
}

/** A process the spawner started (or is starting). */
export interface SpawnedProcess {
  /** Its process id, once started. */
  readonly pid: number | undefined;
  /** Settles once it has exited (or could not start), its stderr read to the end. */
  readonly status: Promise<SpawnExit>;
  /** SIGKILLs it (at once if it is starting still, as soon as it started). */
  kill(): void;
}

interface Entry {
  pid: number | undefined;
  request: SpawnRequest;
  status: Promise<SpawnExit>;
  resolve: (exit: SpawnExit) => void;
}

/**
 * The runtime's one spawner thread, shared by every process it starts.
 *
 * @example
 * ```ts ignore
 * const spawner = new Spawner();
 * const proc = spawner.spawn({ command: "deno", args, env, stdinLine, niceOffset: 5, stdout, stderr });
 * const exit = await proc.status;
 * await spawner.close();
 * ```
 */
export class Spawner {
  #worker: Worker;
  #entries = new Map<number, Entry>();
  #nextId = 0;
  #closed = false;

  /** Starts the spawner's thread. */
  constructor() {
    this.#worker = new Worker(new URL("./spawner_worker.ts", import.meta.url), {
      type: "module",
    });
    this.#worker.onmessage = (e: MessageEvent<SpawnerReport>) => this.#report(e.data);
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.#lost(`the spawner thread failed: ${e.message}`);
    };
  }

  /**
   * Starts a process from the spawner's thread.
   *
   * @param request what to start and where its output goes
   * @returns the process, whose pid is known once it started
   */
  spawn(request: SpawnRequest): SpawnedProcess {
    const id = this.#nextId++;
    const { promise, resolve } = Promise.withResolvers<SpawnExit>();
    const entry: Entry = { pid: undefined, request, status: promise, resolve };
    if (this.#closed) {
      resolve({ code: -1, signal: null, tail: "", error: "the spawner is closed" });
    } else {
      this.#entries.set(id, entry);
      const { command, args, env, stdinLine, niceOffset } = request;
      this.#worker.postMessage(
        { t: "spawn", id, command, args, env, stdinLine, niceOffset } satisfies SpawnerRequest,
      );
    }
    const worker = this.#worker;
    const entries = this.#entries;
    return {
      get pid() {
        return entry.pid;
      },
      status: promise,
      kill() {
        if (entries.has(id)) worker.postMessage({ t: "kill", id } satisfies SpawnerRequest);
      },
    };
  }

  #report(r: SpawnerReport): void {
    const entry = this.#entries.get(r.id);
    if (!entry) return;
    switch (r.t) {
      case "spawned":
        entry.pid = r.pid;
        return;
      case "line":
        return entry.request[r.stream].line(r.text);
      case "dropped":
        return entry.request[r.stream].dropped(r.count);
      case "flood":
        return entry.request[r.stream].flood();
      case "exit": {
        this.#entries.delete(r.id);
        const { code, signal, tail, error } = r;
        entry.resolve(error === undefined ? { code, signal, tail } : { code, signal, tail, error });
      }
    }
  }

  /**
   * The thread is gone: its processes cannot be watched or signalled any
   * more, so each is reported as ended. Their owners close its control
   * channel then, and a sandbox process whose channel closes exits.
   */
  #lost(reason: string): void {
    for (const entry of this.#entries.values()) {
      entry.resolve({ code: -1, signal: null, tail: "", error: reason });
    }
    this.#entries.clear();
  }

  /**
   * Kills every process still alive, waits for their exits and stops the thread.
   *
   * @returns resolves once the thread is stopped
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const exits = [...this.#entries.values()].map((e) => e.status);
    for (const id of this.#entries.keys()) {
      this.#worker.postMessage({ t: "kill", id } satisfies SpawnerRequest);
    }
    await Promise.all(exits);
    this.#worker.terminate();
  }
}
