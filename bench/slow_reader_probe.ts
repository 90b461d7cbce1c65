/**
 * Figure 15's server: a runtime in a process of its own, so the resident
 * set measured is the server's alone; behind the connection gate as
 * `arcp serve` runs it (`--serve gated`) or behind `Deno.serve` alone
 * (`--serve direct`). Prints its URLs as one JSON line, then answers every
 * line on stdin with one JSON line of its memory ({@linkcode ProbeMemory});
 * stops when stdin ends.
 *
 * ```sh
 * deno run -A bench/slow_reader_probe.ts --serve gated
 * ```
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { startDirectServer, startServer } from "../testing/server.ts";

/** The first line the probe prints. */
export interface ProbeUrls {
  /** `ws://127.0.0.1:PORT/arcp`. */
  url: string;
  /** `http://127.0.0.1:PORT`. */
  http: string;
}

/** What the probe answers each stdin line with (MiB, from `Deno.memoryUsage()`). */
export interface ProbeMemory {
  /** Resident set of the process. */
  rss: number;
  /** V8 heap in use. */
  heapUsed: number;
  /** V8 heap reserved. */
  heapTotal: number;
  /** Connections open through the gate (`--serve gated` only). */
  connections?: number;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { serve: { type: "string" } },
    strict: true,
  });
  const dir = await Deno.makeTempDir({ prefix: "arcp_slow_reader_" });
  const options = { kvPath: `${dir}/arcp.kv` };
  const gated = values.serve === "direct" ? undefined : await startServer(options);
  const server = gated ?? await startDirectServer(options);
  const out = (value: unknown) => console.log(JSON.stringify(value));
  out({ url: server.url, http: server.http } satisfies ProbeUrls);
  const mib = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;
  for await (const _ of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    const m = Deno.memoryUsage();
    out(
      {
        rss: mib(m.rss),
        heapUsed: mib(m.heapUsed),
        heapTotal: mib(m.heapTotal),
        connections: gated?.gate.connections,
      } satisfies ProbeMemory,
    );
  }
  await server.close(true);
}
