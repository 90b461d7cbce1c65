/**
 * Soak figures against hostile clients (loopback, bounded): how long a real
 * client takes to be welcomed while 5,000 idle TCP connections are held
 * against `arcp serve` (run as a child process), then figure 15: the
 * server's RSS with 10 clients that submit a ticker and never read. Prints
 * figures; asserts nothing.
 *
 * `deno task soak [--idle N] [--scale F]`
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { startChildServer } from "../testing/server.ts";
import { connect } from "../testing/ws_client.ts";
import { figure15 } from "./slow_reader_figures.ts";

const { values } = parseArgs({
  args: Deno.args,
  // --scale is bench/_report.ts's, read there.
  options: { idle: { type: "string" }, scale: { type: "string" } },
});
const IDLE = Number(values.idle ?? 5000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = await Deno.makeTempDir({ prefix: "arcp_soak_" });
const child = await startChildServer(`${dir}/arcp.kv`, ["--header-timeout-sec", "120"]);
const port = Number(new URL(child.url).port);
try {
  await sleep(1_000);
  const idle: Deno.Conn[] = [];
  for (let i = 0; i < IDLE; i++) {
    try {
      idle.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    } catch {
      break;
    }
  }
  await sleep(500);
  const t0 = performance.now();
  const real = await connect(child.url);
  const welcomeMs = performance.now() - t0;
  await real.close();
  console.log(
    `idle connections held: ${idle.length}; a real client welcomed in ${welcomeMs.toFixed(1)} ms`,
  );
  for (const c of idle) {
    try {
      c.close();
    } catch {
      // closed by the gate
    }
  }
} finally {
  await child.stop();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
await figure15();
