/**
 * Builds the standalone `arcp` binary with `deno compile`. The sandbox
 * bootstrap and the agents are loaded by workers at run time, so they are
 * named with `--include`. `DENORT_BIN` points at a local `denort` when the
 * default one cannot be downloaded.
 *
 * @module
 */
import { RUN_FLAGS } from "../src/cli/flags.ts";

const out = Deno.args[0] ?? "dist/arcp";
const args = [
  "compile",
  ...RUN_FLAGS,
  "--include",
  "src/sandbox/worker/",
  "--include",
  "src/sandbox/host/",
  "--include",
  "agents/",
  "--output",
  out,
  "src/cli/main.ts",
];
const denort = Deno.env.get("DENORT_BIN");
if (denort) console.error(`using DENORT_BIN=${denort}`);
const status = await new Deno.Command(Deno.execPath(), {
  args,
  stdout: "inherit",
  stderr: "inherit",
}).spawn().status;
Deno.exit(status.code);
