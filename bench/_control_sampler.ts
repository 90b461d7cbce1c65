/**
 * Figure 11f's control-plane sampler, run in a Worker of the bench process
 * so that the load generator's own event loop (thousands of submits and
 * events) does not delay the samples: one session answers `session.ping`
 * and `/healthz` is fetched, one after the other, every 50 ms, until the
 * bench posts `stop`; then the round trips (ms) are posted back.
 *
 * Messages: in `{ url, http, token }` (starts), then `"stop"`; out
 * `{ ready: true }` once the session is welcomed, then
 * `{ pings: number[], health: number[] }`.
 *
 * @module
 */
import { BenchClient } from "./_util.ts";

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(msg: unknown): void;
};

scope.onmessage = async (e: MessageEvent<{ url: string; http: string; token: string }>) => {
  const { url, http, token } = e.data;
  const probe = await BenchClient.connect(url, { token, features: ["heartbeat"] });
  let sampling = true;
  scope.onmessage = () => void (sampling = false);
  scope.postMessage({ ready: true });
  const pings: number[] = [];
  const health: number[] = [];
  while (sampling) {
    pings.push(await probe.ping());
    const t0 = performance.now();
    await (await fetch(`${http}/healthz`)).body?.cancel();
    health.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 50));
  }
  await probe.close();
  scope.postMessage({ pings, health });
};
