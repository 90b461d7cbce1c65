/**
 * Per-iteration cost of starting a sandboxed worker: a bare permissionless
 * `new Worker`, and the real entry module (lockdown + bootstrap + agent)
 * running `echo` once.
 *
 * @module
 */
import { agentWorkerRoundTrip, rawWorkerRoundTrip } from "./_util.ts";

Deno.bench({
  name: "new Worker (permissions none) + one message round trip",
  group: "worker start",
  baseline: true,
  n: 60,
  warmup: 5,
  async fn() {
    await rawWorkerRoundTrip();
  },
});

Deno.bench({
  name: "new Worker + sandbox bootstrap + echo agent start→result",
  group: "worker start",
  n: 60,
  warmup: 5,
  async fn() {
    await agentWorkerRoundTrip();
  },
});
