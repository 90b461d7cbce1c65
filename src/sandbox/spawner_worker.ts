/**
 * The spawner's thread: a Worker of the runtime that starts sandbox
 * processes, so that the runtime's main thread never waits on one. Starting
 * a process blocks its caller until the child has exec'd, and on a loaded
 * machine the child waits for a core first: 0.5–80 ms per start on the main
 * thread under 11f's load (measured), long enough to delay every session's
 * pings. Here only this thread waits.
 *
 * It owns every process it started: writes the one-time intro to its stdin,
 * lowers its priority, drains its stdout and stderr (rate-limited lines go
 * to the runtime's log), kills it when asked, and reports its exit with the
 * end of its stderr. The processes are children of the runtime process, as
 * when the main thread started them: they die with it, since their control
 * channel closes with it.
 *
 * Messages are {@linkcode SpawnerRequest} in and {@linkcode SpawnerReport}
 * out (`spawner.ts`).
 *
 * @module
 */
import { getPriority, setPriority } from "os";
import { OutputDrain } from "./output_drain.ts";
import type { SpawnerReport, SpawnerRequest } from "./spawner.ts";

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<SpawnerRequest>) => void) | null;
  postMessage(msg: SpawnerReport): void;
};

/** The processes alive, by the runtime's id for them. */
const children = new Map<number, Deno.ChildProcess>();

/** Where `nice(1)` may be, in order. */
const NICE_PATHS = ["/usr/bin/nice", "/bin/nice"];

/** Whether `path` names a regular file this thread may read the metadata of. */
function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** The `nice(1)` binary, once looked for (null: none usable). */
let niceBinary: string | null | undefined;

/**
 * The command and arguments that start `command` `offset` below this
 * thread's priority from its first instruction, under `nice(1)`: every
 * thread it ever starts inherits that. Renicing it once spawned lowers
 * only its main thread (Linux sets one thread at a time) and misses the
 * threads it started meanwhile, which under load is most of them.
 * Without a usable `nice`, or for a command that is not a file (so that
 * it fails to start here, with the reason, rather than under `nice`),
 * it is started as it is.
 */
function underNice(command: string, args: string[], offset: number): [string, string[]] {
  niceBinary ??= NICE_PATHS.find(isFile) ?? null;
  if (offset <= 0 || niceBinary === null || !isFile(command)) return [command, args];
  return [niceBinary, ["-n", String(offset), command, ...args]];
}

/**
 * Lowers a just-spawned process's CPU priority `offset` below this
 * process's: for a process not started under `nice`, its main thread at
 * least. Best effort: where the system refuses, it runs at the runtime's.
 */
function lowerPriority(pid: number, offset: number): void {
  try {
    setPriority(pid, Math.min(19, getPriority() + offset));
  } catch {
    // Not permitted here: containment does not depend on it.
  }
}

/** Starts a process as `Deno.Command` does, with the options every sandbox process gets. */
function start(command: string, args: string[], env: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command(command, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env,
  }).spawn();
}

async function writeLine(child: Deno.ChildProcess, line: string): Promise<void> {
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode(line));
    await writer.close();
  } catch {
    // The process died before reading; its exit is reported.
  }
}

/** Starts the process of `req` at its lowered priority, under `nice` where it can. */
function spawnLowered(req: Extract<SpawnerRequest, { t: "spawn" }>): Deno.ChildProcess {
  const [command, args] = underNice(req.command, req.args, req.niceOffset);
  if (command !== req.command) {
    try {
      return start(command, args, req.env);
    } catch {
      // `nice` may be outside what `--allow-run` grants: start the command as it is.
    }
  }
  const child = start(req.command, req.args, req.env);
  lowerPriority(child.pid, req.niceOffset);
  return child;
}

function spawn(req: Extract<SpawnerRequest, { t: "spawn" }>): void {
  const { id } = req;
  let child: Deno.ChildProcess;
  try {
    child = spawnLowered(req);
  } catch (err) {
    scope.postMessage({ t: "exit", id, code: -1, signal: null, tail: "", error: String(err) });
    return;
  }
  children.set(id, child);
  scope.postMessage({ t: "spawned", id, pid: child.pid });
  void writeLine(child, req.stdinLine);
  const sink = (stream: "stdout" | "stderr") => ({
    line: (text: string) => scope.postMessage({ t: "line", id, stream, text }),
    dropped: (count: number) => scope.postMessage({ t: "dropped", id, stream, count }),
    flood: () => scope.postMessage({ t: "flood", id, stream }),
  });
  new OutputDrain(child.stdout, sink("stdout"));
  const stderr = new OutputDrain(child.stderr, sink("stderr"));
  child.status.then(async (status) => {
    children.delete(id);
    // Its last words explain a crash (a heap exhausted): read to the end first.
    await stderr.done;
    scope.postMessage({
      t: "exit",
      id,
      code: status.code,
      signal: status.signal,
      tail: stderr.tail,
    });
  });
}

scope.onmessage = (e: MessageEvent<SpawnerRequest>) => {
  const req = e.data;
  if (req.t === "spawn") return spawn(req);
  try {
    // Deno refuses to signal a child it has reaped, so a reused pid is never hit.
    children.get(req.id)?.kill("SIGKILL");
  } catch {
    // already gone
  }
};
