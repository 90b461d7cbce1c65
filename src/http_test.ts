import { deepEqual, equal, match } from "assert";
import { httpHandler, type StorageState } from "./http.ts";
import { Metrics } from "./metrics.ts";

function handler(
  closing: { now: boolean },
  storage: StorageState = { ok: true },
  metrics = new Metrics(),
) {
  return httpHandler({
    runtime: { name: "test", version: "0" },
    maxFrameBytes: 1024,
    maxSocketBytes: 4096,
    isClosing: () => closing.now,
    liveJobs: () => 2,
    storage: () => storage,
    metrics,
    connect: () => ({ onText() {}, onClose() {} }),
  });
}

const FAILING: StorageState = {
  ok: false,
  error: "database or disk is full",
  since: "2026-01-01T00:00:00.000Z",
};

Deno.test("GET /arcp without an upgrade is 426", async () => {
  const res = await handler({ now: false })(new Request("http://x/arcp"));
  equal(res.status, 426);
  equal(await res.text(), "expected a WebSocket upgrade");
});

Deno.test("GET /healthz reports the runtime and its live jobs", async () => {
  const res = await handler({ now: false })(new Request("http://x/healthz"));
  equal(res.status, 200);
  deepEqual(await res.json(), {
    ok: true,
    runtime: { name: "test", version: "0" },
    live_jobs: 2,
    storage: { ok: true },
  });
});

Deno.test("GET /readyz is 200 while the runtime can serve", async () => {
  const res = await handler({ now: false })(new Request("http://x/readyz"));
  equal(res.status, 200);
  deepEqual(await res.json(), { ready: true });
});

Deno.test("while storage fails, /healthz stays 200 but says so and /readyz is 503", async () => {
  const fetch = handler({ now: false }, FAILING);
  const health = await fetch(new Request("http://x/healthz"));
  equal(health.status, 200);
  const body = await health.json();
  equal(body.ok, false);
  deepEqual(body.storage, FAILING);
  const ready = await fetch(new Request("http://x/readyz"));
  equal(ready.status, 503);
  deepEqual(await ready.json(), { ready: false, reasons: ["storage_failing"], storage: FAILING });
});

Deno.test("GET /metrics renders the registry in the Prometheus text format", async () => {
  const metrics = new Metrics();
  metrics.counter("arcp_test_total", "A test count.").inc();
  const res = await handler({ now: false }, { ok: true }, metrics)(
    new Request("http://x/metrics"),
  );
  equal(res.status, 200);
  match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  equal(
    await res.text(),
    "# HELP arcp_test_total A test count.\n# TYPE arcp_test_total counter\narcp_test_total 1\n",
  );
});

Deno.test("while closing, /arcp is refused with 503 and /healthz says so", async () => {
  const fetch = handler({ now: true });
  const arcp = await fetch(new Request("http://x/arcp", { headers: { upgrade: "websocket" } }));
  equal(arcp.status, 503);
  equal(await arcp.text(), "shutting down");
  const health = await fetch(new Request("http://x/healthz"));
  equal(health.status, 503);
  equal((await health.json()).ok, false);
  const ready = await fetch(new Request("http://x/readyz"));
  equal(ready.status, 503);
  deepEqual((await ready.json()).reasons, ["shutting_down"]);
});

Deno.test("other paths are 404", async () => {
  const res = await handler({ now: false })(new Request("http://x/nope"));
  equal(res.status, 404);
  await res.body?.cancel();
});
