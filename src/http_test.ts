import { deepEqual, equal } from "assert";
import { httpHandler } from "./http.ts";

function handler(closing: { now: boolean }) {
  return httpHandler({
    runtime: { name: "test", version: "0" },
    maxFrameBytes: 1024,
    maxSocketBytes: 4096,
    isClosing: () => closing.now,
    liveJobs: () => 2,
    connect: () => ({ onText() {}, onClose() {} }),
  });
}

Deno.test("GET /arcp without an upgrade is 426", async () => {
  const res = await handler({ now: false })(new Request("http://x/arcp"));
  equal(res.status, 426);
  equal(await res.text(), "expected a WebSocket upgrade");
});

Deno.test("GET /healthz reports the runtime and its live jobs", async () => {
  const res = await handler({ now: false })(new Request("http://x/healthz"));
  equal(res.status, 200);
  deepEqual(await res.json(), { ok: true, runtime: { name: "test", version: "0" }, live_jobs: 2 });
});

Deno.test("while closing, /arcp is refused with 503 and /healthz says so", async () => {
  const fetch = handler({ now: true });
  const arcp = await fetch(new Request("http://x/arcp", { headers: { upgrade: "websocket" } }));
  equal(arcp.status, 503);
  equal(await arcp.text(), "shutting down");
  const health = await fetch(new Request("http://x/healthz"));
  equal(health.status, 503);
  equal((await health.json()).ok, false);
});

Deno.test("other paths are 404", async () => {
  const res = await handler({ now: false })(new Request("http://x/nope"));
  equal(res.status, 404);
  await res.body?.cancel();
});
