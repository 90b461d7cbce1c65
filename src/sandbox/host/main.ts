/**
 * The sandbox host process: runs the agent workers of one principal, with a
 * V8 heap cap, so an agent that exhausts memory ends this process and its
 * own principal's jobs, never the runtime or anyone else's. It relays
 * messages and checks nothing beyond flood control: every check happens in
 * the runtime.
 *
 * @module
 */
import { workerEntryUrl } from "../worker/entry.ts";
import { EVENT_WINDOW } from "../worker/limits.ts";
import type { HostCommand, HostReport } from "./protocol.ts";

const encoder = new TextEncoder();
const stdout = Deno.stdout.writable.getWriter();
let writing: Promise<void> = Promise.resolve();

function report(r: HostReport): void {
  let line: string;
  try {
    line = JSON.stringify(r) + "\n";
  } catch (err) {
    if (!("id" in r)) return;
    line = JSON.stringify({
      id: r.id,
      crash: `agent posted a message that is not JSON: ${(err as Error).message}`,
    }) + "\n";
  }
  const bytes = encoder.encode(line);
  writing = writing.then(() => stdout.write(bytes));
}

interface Running {
  worker: Worker;
  /** Events relayed minus credits seen: a worker ignoring credits is killed here too. */
  outstanding: number;
}

const running = new Map<string, Running>();

function kill(id: string): void {
  running.get(id)?.worker.terminate();
  running.delete(id);
}

function launch(cmd: Extract<HostCommand, { c: "launch" }>): void {
  let worker: Worker;
  try {
    worker = new Worker(workerEntryUrl(cmd.agentUrl), {
      type: "module",
      name: cmd.id,
      // deno-lint-ignore no-explicit-any
      deno: { permissions: cmd.permissions } as any,
    });
  } catch (err) {
    report({ id: cmd.id, crash: (err as Error).message });
    return;
  }
  const run: Running = { worker, outstanding: 0 };
  running.set(cmd.id, run);
  worker.onmessage = (e: MessageEvent) => {
    const m = e.data as { t?: unknown };
    if ((m?.t === "event" || m?.t === "chunk") && ++run.outstanding > 2 * EVENT_WINDOW) {
      kill(cmd.id);
      report({
        id: cmd.id,
        crash: `agent flooded the runtime with more than ${2 * EVENT_WINDOW} unacknowledged events`,
      });
      return;
    }
    report({ id: cmd.id, m: e.data });
  };
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    kill(cmd.id);
    report({ id: cmd.id, crash: e.message ?? "uncaught error in agent" });
  };
  worker.onmessageerror = () => {
    kill(cmd.id);
    report({ id: cmd.id, crash: "agent sent a message that could not be read" });
  };
}

function handle(cmd: HostCommand): void {
  if (cmd.c === "launch") launch(cmd);
  else if (cmd.c === "kill") kill(cmd.id);
  else if (cmd.c === "post") {
    const run = running.get(cmd.id);
    if (!run) return;
    if (cmd.msg.t === "credit") run.outstanding = Math.max(0, run.outstanding - cmd.msg.n);
    run.worker.postMessage(cmd.msg);
  }
}

if (import.meta.main) {
  report({ ready: true });
  let buf = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line) handle(JSON.parse(line) as HostCommand);
    }
  }
  // The runtime went away: nothing may outlive it.
  Deno.exit(0);
}
