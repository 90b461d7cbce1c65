/**
 * Runs the real `arcp` CLI as a child process.
 *
 * @module
 */
import { UNSTABLE_FLAGS } from "../../src/cli/flags.ts";
import { ROOT } from "../../testing/server.ts";

/** What a finished CLI run left. */
export interface CliResult {
  /** Exit code. */
  code: number;
  /** Everything on stdout. */
  stdout: string;
  /** Everything on stderr. */
  stderr: string;
}

/** A CLI run still going. */
export interface RunningCli {
  /**
   * Waits until stdout has a line matching `pattern`.
   *
   * @param pattern what to wait for
   * @returns the match
   */
  waitFor(pattern: RegExp): Promise<RegExpMatchArray>;
  /**
   * Sends a signal.
   *
   * @param signal the signal
   */
  kill(signal: Deno.Signal): void;
  /** Waits for the exit. */
  done(): Promise<CliResult>;
  /**
   * Writes to the child's stdin (only when spawned with `stdin: true`).
   *
   * @param text what to write
   */
  write(text: string): Promise<void>;
  /** Closes the child's stdin (end of input). */
  closeStdin(): Promise<void>;
}

/** What the child keeps of this environment: enough for Deno to find its cache. */
const PASSTHROUGH = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "SYSTEMROOT", "TMPDIR"];

function command(args: string[], env: Record<string, string>, stdin: boolean): Deno.Command {
  const base: Record<string, string> = { NO_COLOR: "1" };
  for (const name of PASSTHROUGH) {
    const value = Deno.env.get(name);
    if (value !== undefined) base[name] = value;
  }
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...UNSTABLE_FLAGS,
      "-A",
      `${ROOT}/src/cli/main.ts`,
      ...args,
    ],
    cwd: ROOT,
    env: { ...base, ...env },
    clearEnv: true,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * Starts the CLI.
 *
 * @param args the command line after `arcp`
 * @param env the child's `ARCP_*` settings (nothing else of this environment leaks in but what Deno needs)
 * @param options `stdin: true` to write to the child's stdin
 * @returns the running process
 */
export function spawnCli(
  args: string[],
  env: Record<string, string>,
  options: { stdin?: boolean } = {},
): RunningCli {
  const child = command(args, env, options.stdin ?? false).spawn();
  const stdin = options.stdin ? child.stdin.getWriter() : undefined;
  let stdout = "";
  let stderr = "";
  let wake: (() => void) | undefined;
  const pump = async (stream: ReadableStream<Uint8Array>, onText: (t: string) => void) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      onText(text);
      wake?.();
    }
  };
  const pumps = Promise.all([
    pump(child.stdout, (t) => stdout += t),
    pump(child.stderr, (t) => stderr += t),
  ]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    wake?.();
    return s;
  });
  return {
    async waitFor(pattern) {
      while (true) {
        const m = stdout.match(pattern);
        if (m) return m;
        if (exited) {
          throw new Error(`exited before printing ${pattern}:\n${stdout}\n${stderr}`);
        }
        await new Promise<void>((r) => wake = r);
      }
    },
    kill(signal) {
      child.kill(signal);
    },
    async write(text) {
      await stdin!.write(new TextEncoder().encode(text));
    },
    async closeStdin() {
      await stdin!.close();
    },
    async done() {
      const { code } = await status;
      await pumps;
      return { code, stdout, stderr };
    },
  };
}

/**
 * Runs the CLI to the end.
 *
 * @param args the command line after `arcp`
 * @param env the child's `ARCP_*` settings (nothing else of this environment leaks in but what Deno needs)
 * @returns exit code and output
 */
export function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  return spawnCli(args, env).done();
}
