import { deepEqual, equal } from "assert";
import { diagnose, isLoopbackHost } from "./diagnostics.ts";
import type { ApiDeps, SandboxView } from "./deps.ts";
import { Store } from "../store/store.ts";

/** The parts `diagnose` reads, around a real in-memory store. */
function deps(store: Store, sandbox: SandboxView, extra: Partial<ApiDeps> = {}): ApiDeps {
  return {
    store,
    kvPath: "/srv/arcp/arcp.kv",
    sandbox: () => sandbox,
    deployment: { host: "127.0.0.1", tls: false, generatedToken: false },
    drain: { status: { state: "serving" } },
    ...extra,
  } as unknown as ApiDeps;
}

Deno.test("a sandbox process at 80% of its memory ceiling or more is a warning naming it", async () => {
  const store = await Store.open({ path: ":memory:" });
  try {
    const mib = 1024 * 1024;
    const items = diagnose(deps(store, {
      mode: "process",
      memory_mb: 100,
      warm: 0,
      hosts: [
        { pid: 11, rss_bytes: 79 * mib, jobs: 1 },
        { pid: 12, rss_bytes: 80 * mib, jobs: 1 },
        { pid: 13, jobs: 0 },
      ],
    }));
    const high = items.filter((i) => i.code === "host_memory_high");
    deepEqual(high.map((i) => i.level), ["warn"]);
    equal(high[0].message, "sandbox process 12 uses 80 MiB of its 100 MiB ceiling");
    // Warnings come first.
    deepEqual(items.map((i) => i.level), [...items].map((i) => i.level).sort().reverse());
  } finally {
    await store.close();
  }
});

Deno.test("loopback hosts are the ones that need no TLS", () => {
  deepEqual(
    ["127.0.0.1", "127.1.2.3", "::1", "localhost", "0.0.0.0", "10.0.0.5", "::"].map(isLoopbackHost),
    [true, true, true, true, false, false, false],
  );
});
