/**
 * Prints the README's `arcp serve` options table, generated from the one
 * table in `src/cli/serve_config.ts`: `deno run scripts/serve_options.ts`.
 *
 * @module
 */
import { serveOptionsTable } from "../src/cli/serve_config.ts";

console.log(serveOptionsTable());
