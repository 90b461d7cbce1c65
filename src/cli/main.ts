/**
 * The `arcp` command: `serve`, `agents`, `submit`, `watch`, `jobs`,
 * `cancel`, `send`, `status`, `doctor`. Runs from a checkout, from the
 * package (`deno run <flags> jsr:@arcp/runtime/cli serve`), or embedded
 * through {@linkcode main}.
 *
 * @module
 */
import { RUNTIME_INFO } from "../runtime.ts";
import { agents } from "./agents.ts";
import { cancel } from "./cancel.ts";
import { doctor } from "./doctor.ts";
import { jobs } from "./jobs.ts";
import { serve } from "./serve.ts";
import { send } from "./send.ts";
import { status } from "./status.ts";
import { submit } from "./submit.ts";
import { watch } from "./watch.ts";

/** Usage text of `arcp`. */
export const USAGE = `usage: arcp <command> [options]
  serve     run the runtime (arcp serve --help)
  agents    list the agents a runtime offers, with their versions
  submit    submit a job and follow it to its result (arcp submit --help)
  watch     follow a job, history first, to its result (arcp watch --help)
  jobs      list your jobs (arcp jobs --help)
  cancel    cancel a job (arcp cancel --help)
  send      send input to a running job (arcp send --help)
  status    the runtime's summary, from the management API (arcp status --help)
  doctor    list damage in a KV store, read-only (arcp doctor --help)
  help      print this (also -h, --help); --version prints the version
Client commands connect to ARCP_URL (default ws://127.0.0.1:7777/arcp) with
the token in ARCP_TOKEN (export ARCP_TOKEN=…).`;

/**
 * Runs the CLI.
 *
 * @param args the command line
 * @returns the exit code
 * @example
 * ```ts ignore
 * import { main } from "@arcp/runtime/cli";
 * Deno.exit(await main(["serve", "--port", "7777", "--agents", "./agents"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "serve":
      return await serve(rest);
    case "agents":
      return await agents(rest);
    case "submit":
      return await submit(rest);
    case "watch":
      return await watch(rest);
    case "jobs":
      return await jobs(rest);
    case "cancel":
      return await cancel(rest);
    case "send":
      return await send(rest);
    case "status":
      return await status(rest);
    case "doctor":
      return doctor(rest);
    case "--version":
    case "-V":
    case "version":
      console.log(`arcp ${RUNTIME_INFO.version} (${RUNTIME_INFO.name}, deno ${Deno.version.deno})`);
      return 0;
    case undefined:
    case "help":
    case "-h":
    case "--help":
      console.log(USAGE);
      return 0;
    default:
      console.error(`arcp: unknown command ${JSON.stringify(command)}\n${USAGE}`);
      return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
