/**
 * Soak figures against hostile clients (loopback, bounded): how long a real
 * client takes to be welcomed while 5,000 idle TCP connections are held
 * against the runtime, and the runtime's RSS with 10 clients that submit a
 * ticker and never read. Runs `arcp serve` as a child process and prints
 * figures; asserts nothing.
 *
 * `deno task soak [--idle N] [--non-readers N]`
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { startChildServer } from "../testing/server.ts";
import { connect } from "../testing/ws_client.ts";
import { RawWs } from "../testing/raw_ws.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { idle: { type: "string" }, "non-readers": { type: "string" } },
});
const IDLE = Number(values.idle ?? 5000);
const NON_READERS = Number(values["non-readers"] ?? 10);

/** Resident set of a process (`ps`: Deno reads another process's `/proc` only with --allow-all). */
async function rssMiB(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] }).output();
  return Number(new TextDecoder().decode(out.stdout).trim()) / 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = await Deno.makeTempDir({ prefix: "arcp_soak_" });
const child = await startChildServer(`${dir}/arcp.kv`, ["--header-timeout-sec", "120"]);
const port = Number(new URL(child.url).port);
try {
  await sleep(1_000);
  const idleRss = await rssMiB(child.process.pid);
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

  await sleep(1_000);
  const before = await rssMiB(child.process.pid);
  const raws: RawWs[] = [];
  for (let i = 0; i < NON_READERS; i++) {
    const raw = await RawWs.open(child.url);
    await raw.send({
      type: "session.hello",
      payload: {
        client: { name: "soak", version: "0" },
        auth: { scheme: "bearer", token: "alice-token" },
        capabilities: { encodings: ["json"], features: ["progress"] },
      },
    });
    const [w] = await raw.readUntil(() => true);
    await raw.send({
      type: "job.submit",
      session_id: w.session_id,
      payload: { agent: "ticker", input: { count: 10_000_000, interval_ms: 0 } },
    });
    raws.push(raw);
  }
  let peak = before;
  for (let s = 0; s < 30; s++) {
    await sleep(1_000);
    peak = Math.max(peak, await rssMiB(child.process.pid));
  }
  console.log(
    `RSS: ${idleRss.toFixed(0)} MiB idle, ${before.toFixed(0)} MiB before, peak ${
      peak.toFixed(0)
    } MiB over 30 s with ${NON_READERS} clients that never read (+${
      (peak - before).toFixed(0)
    } MiB)`,
  );
  for (const raw of raws) raw.close();
} finally {
  await child.stop();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
