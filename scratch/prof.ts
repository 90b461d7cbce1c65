import { startServer, ROOT } from "../testing/server.ts";
import { connect } from "../testing/ws_client.ts";
const agent = Deno.args[0] ?? "echo-reused";
const n = Number(Deno.args[1] ?? 300);
const s = await startServer({ agentsDir: `${ROOT}/${Deno.args[2] ?? "bench/agents"}` });
const c = await connect(s.url);
const times: number[] = [];
const acc: number[] = [];
for (let i = 0; i < n + 20; i++) {
  const t0 = performance.now();
  const a = await c.submit({ agent, input: { i } });
  const t1 = performance.now();
  const end = (await c.untilTerminal(a.job_id!)).at(-1)!;
  if (i >= 20) acc.push(t1 - t0);
  if (end.type !== "job.result") throw new Error(JSON.stringify(end.payload));
  if (i >= 20) times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
acc.sort((a, b) => a - b);
console.log(`submit→accepted p50 ${acc[Math.floor(n / 2)].toFixed(2)}`);
const sum = times.reduce((a, b) => a + b, 0);
console.log(`${agent}: p50 ${times[Math.floor(n / 2)].toFixed(2)} ms p99 ${times[Math.floor(n * 0.99)].toFixed(2)} ms; ${(n / sum * 1000).toFixed(0)} jobs/s`);
await c.close();
await s.close();
console.log((globalThis as any).__how);
