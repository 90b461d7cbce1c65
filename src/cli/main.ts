/**
 * The `arcp` command: `serve`, `submit`, `jobs`, `cancel`, `status`, `doctor`. Runs from a
 * checkout, from the package (`deno run <flags> jsr:@arcp/runtime/cli
 * serve`), or embedded through {@linkcode main}.
 *
 * @module
 */
import { cancel } from "./cancel.ts";
import { doctor } from "./doctor.ts";
import { jobs } from "./jobs.ts";
import { serve } from "./serve.ts";
import { status } from "./status.ts";
import { submit } from "./submit.ts";

const USAGE = `usage: arcp <command> [options]
  serve     run the runtime (arcp serve --help)
  submit    submit a job and follow it (arcp submit --help)
  jobs      list your jobs (arcp jobs --help)
  cancel    cancel a job (arcp cancel --help)
  status    the runtime's summary, from the management API (arcp status --help)
  doctor    list damage in a KV store, read-only (arcp doctor --help)`;

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
    case "submit":
      return await submit(rest);
    case "jobs":
      return await jobs(rest);
    case "cancel":
      return await cancel(rest);
    case "status":
      return await status(rest);
    case "doctor":
      return doctor(rest);
    default:
      console.error(USAGE);
      return command === undefined || command === "--help" ? 0 : 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
