/**
 * What a fetch through a job's egress proxy costs against a direct fetch,
 * both from a worker to a loopback server: the same worker round trip per
 * iteration, one fetch of a small body inside it. The proxy is the real
 * one (`EgressProxy` and the worker's `routeFetchThrough`), run in this
 * process as a sandbox process runs it.
 *
 * @module
 */
import { EgressProxy } from "../src/sandbox/egress_proxy.ts";

const EGRESS_FETCH = new URL("../src/sandbox/worker/egress_fetch.ts", import.meta.url).href;

const upstream = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen() {} },
  () => new Response("x".repeat(1024)),
);
const target = `http://127.0.0.1:${upstream.addr.port}/data`;
const proxy = new EgressProxy([`http://127.0.0.1:${upstream.addr.port}/**`]);

/** A worker that fetches `target` once per message and answers with the body's length. */
function fetcher(net: string, route: boolean): () => Promise<void> {
  const src = (route
    ? `import { routeFetchThrough } from ${JSON.stringify(EGRESS_FETCH)};\n` +
      `routeFetchThrough(${JSON.stringify(proxy.config)});\n`
    : "") +
    `self.onmessage = async () => self.postMessage((await (await fetch(${
      JSON.stringify(target)
    })).text()).length);\n`;
  const worker = new Worker(`data:application/typescript,${encodeURIComponent(src)}`, {
    type: "module",
    deno: {
      permissions: { net: [net], read: false, write: false, env: false, run: false, ffi: false },
      // deno-lint-ignore no-explicit-any
    } as any,
  });
  return () =>
    new Promise<void>((resolve) => {
      worker.onmessage = () => resolve();
      worker.postMessage(null);
    });
}

const direct = fetcher(`127.0.0.1:${upstream.addr.port}`, false);
const proxied = fetcher(proxy.address, true);

Deno.bench({
  name: "worker fetch, direct (net granted for the target: it could also listen there)",
  group: "egress",
  baseline: true,
  n: 400,
  warmup: 20,
  async fn() {
    await direct();
  },
});

Deno.bench({
  name: "worker fetch through the egress proxy (net only for the proxy)",
  group: "egress",
  n: 400,
  warmup: 20,
  async fn() {
    await proxied();
  },
});
