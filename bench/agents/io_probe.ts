/**
 * `io-bench@1.0.0`: times `n` bare `Deno.readTextFile` / `fetch` calls
 * against `n` lease-checked `ctx.fs.readText` / `ctx.fetch` calls on the
 * same path and URL, from inside one sandboxed agent, and returns the mean
 * cost of each in microseconds. The lease must grant `fs.read` on `path` and
 * `net.fetch` on `url`.
 *
 * The file is not named `*_bench.ts` so that `deno bench` does not run it.
 *
 * @module
 */
import { defineAgent } from "../../src/agent.ts";

/** Input of the agent. */
interface IoBenchInput {
  /** A file the lease grants for reading. */
  path: string;
  /** A URL the lease grants for fetching. */
  url: string;
  /** Calls per measured kind. */
  n: number;
  /** Unmeasured calls per kind first (default 20). */
  warmup?: number;
}

/** Mean microseconds of one call of `op`, over `n` sequential calls. */
async function perOpMicros(n: number, op: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await op();
  return ((performance.now() - t0) * 1000) / n;
}

export default defineAgent({
  name: "io-bench",
  version: "1.0.0",
  description: "Times bare vs lease-checked file reads and fetches; returns µs per op.",
  async run(input: IoBenchInput, ctx) {
    const path = String(input.path);
    const url = String(input.url);
    const n = Math.max(1, Math.floor(Number(input.n ?? 100)));
    const warmup = Math.max(0, Math.floor(Number(input.warmup ?? 20)));
    const ops: Record<string, () => Promise<unknown>> = {
      bare_read: () => Deno.readTextFile(path),
      ctx_read: () => ctx.fs.readText(path),
      bare_fetch: async () => await (await fetch(url)).text(),
      ctx_fetch: async () => await (await ctx.fetch(url)).text(),
      ctx_authorize: () => ctx.authorize("fs.read", path),
    };
    for (const op of Object.values(ops)) await perOpMicros(warmup, op);
    const out: Record<string, number> = {};
    // Two rounds, alternating kinds, so drift on a noisy machine hits both sides alike.
    for (let round = 0; round < 2; round++) {
      for (const [name, op] of Object.entries(ops)) {
        out[name] = (out[name] ?? 0) + (await perOpMicros(Math.ceil(n / 2), op)) / 2;
      }
    }
    return { n, us_per_op: out };
  },
});
