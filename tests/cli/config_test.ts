/**
 * `arcp serve --config`: the file is validated with zod, covers every
 * setting, and flags override it; `--help` and the README list every option.
 */
import { deepEqual, equal, match, ok, rejects } from "assert";
import {
  readServeConfig,
  SERVE_OPTIONS,
  serveOptionsTable,
  serveUsage,
  toRuntimeOptions,
} from "../../src/cli/serve_config.ts";
import { ROOT, spawnServe } from "../../testing/server.ts";
import { WsClient } from "../../testing/ws_client.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

async function withFile(json: unknown, use: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_config_" });
  try {
    await Deno.writeTextFile(`${dir}/arcp.json`, JSON.stringify(json));
    await use(`${dir}/arcp.json`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a config file sets library-only limits: caps, event rate, quotas, retention, pool sizes", async () => {
  await withFile({
    port: 0,
    sessions: { maxPerPrincipal: 3, logHours: 2 },
    quotas: { maxJobsPerPrincipal: 5, maxEventsPerJob: 10, maxChildrenPerJob: 2, eventRate: 50 },
    jobs: { cancelGraceSec: 0.5 },
    sandbox: { mode: "worker", warmPool: 0, jobsPerProcess: 1, describeTimeoutSec: 3 },
    retention: { jobDays: "forever", historyDays: 1, sweepIntervalSec: 0 },
    log: { level: "warn", format: "json" },
  }, async (path) => {
    const config = await readServeConfig(["--config", path], env({}));
    const options = toRuntimeOptions(config);
    equal(config.port, 0);
    deepEqual(options.sessions, { maxSessionsPerPrincipal: 3 });
    equal(options.logTtlMs, 2 * 3600_000);
    deepEqual(options.jobs, {
      maxJobsPerPrincipal: 5,
      maxEventsPerJob: 10,
      maxChildrenPerJob: 2,
      cancelGraceMs: 500,
    });
    deepEqual(options.liveness, { eventRate: 50 });
    deepEqual(options.describe, { timeoutMs: 3000 });
    equal(options.sandbox, "worker");
    equal(options.warmPool, 0);
    equal(options.jobsPerProcess, 1);
    equal(options.jobRetentionMs, 0);
    equal(options.jobHistoryTtlMs, 24 * 3600_000);
    equal(options.sweepIntervalMs, 0);
    deepEqual([config.values["log-level"], config.values["log-format"]], ["warn", "json"]);
    ok(options.denyPaths?.includes(path), "the config file is kept from leases");
  });
});

Deno.test("flags and environment override the config file", async () => {
  await withFile({ port: 1234, host: "0.0.0.0", quotas: { maxEventsPerJob: 10 } }, async (path) => {
    const config = await readServeConfig(
      ["--config", path, "--job-max-events", "20"],
      env({ ARCP_HOST: "127.0.0.2" }),
    );
    equal(config.port, 1234);
    equal(config.host, "127.0.0.2");
    equal(toRuntimeOptions(config).jobs?.maxEventsPerJob, 20);
  });
});

Deno.test("a bad config file names the file, the key and what is wrong", async () => {
  for (
    const [json, expected] of [
      [
        { quotas: { maxEventsPerJob: 0 } },
        /arcp\.json: quotas\.maxEventsPerJob: expected a positive integer$/,
      ],
      [
        { quotas: { maxEventsPerJob: "10" } },
        /quotas\.maxEventsPerJob: expected a positive integer$/,
      ],
      [{ port: 70000 }, /arcp\.json: port: expected a port, 0 to 65535$/],
      [{ sandbox: { mode: "vm" } }, /sandbox\.mode: expected process or worker$/],
      [
        { retention: { jobDays: -1 } },
        /retention\.jobDays: expected a non-negative number or forever$/,
      ],
      [{ nope: 1 }, /arcp\.json: nope: unknown setting/],
      [{ quotas: 5 }, /arcp\.json: quotas: expected an object$/],
    ] as const
  ) {
    await withFile(json, async (path) => {
      await rejects(() => readServeConfig(["--config", path], env({})), expected);
    });
  }
});

Deno.test("every option has a flag, and every one but --config a file key; --help lists them all", () => {
  const usage = serveUsage();
  const keys = new Set<string>();
  for (const o of SERVE_OPTIONS) {
    match(usage, new RegExp(`^  --${o.flag}\\b`, "m"), o.flag);
    if (o.flag === "config") continue;
    ok("key" in o, `--${o.flag} has no config key`);
    ok(!keys.has(o.key), `${o.key} twice`);
    keys.add(o.key);
    match(usage, new RegExp(`file: ${o.key.replace(".", "\\.")}\\)`), o.flag);
  }
});

Deno.test("the README's options table is the generated one (deno run scripts/serve_options.ts)", async () => {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  ok(
    readme.includes(serveOptionsTable()),
    `README.md's serve options table is stale; replace it with:\n${serveOptionsTable()}`,
  );
});

Deno.test("arcp serve --config applies the file's caps, and a flag beats it (real process)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_config_" });
  await Deno.writeTextFile(
    `${dir}/arcp.json`,
    JSON.stringify({ quotas: { maxJobsPerPrincipal: 1 }, tokens: ["t=alice"], port: 1 }),
  );
  const s = await spawnServe([
    "--config",
    `${dir}/arcp.json`,
    "--port",
    "0",
    "--kv",
    `${dir}/arcp.kv`,
    "--agents",
    `${ROOT}/agents`,
    // The sleeper is still running at stop: no drain to wait out.
    "--drain-sec",
    "0",
  ]);
  try {
    const c = new WsClient(s.url);
    await c.hello("t");
    const first = await c.submit({ agent: "sleeper", input: { ms: 30_000 } });
    equal(first.type, "job.accepted", JSON.stringify(first.payload));
    const second = await c.submit({ agent: "sleeper", input: { ms: 30_000 } });
    equal(second.type, "job.error", JSON.stringify(second.payload));
    match(JSON.stringify(second.payload), /jobs|limit|cap/i);
    await c.close();
  } finally {
    await s.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("node settings come from flags, ARCP_NODE_ID and the file; a bad id or a renewal not below the lease is a usage error", async () => {
  await withFile({ node: { url: "wss://n1.example/arcp", leaseMs: 5000 } }, async (path) => {
    const config = await readServeConfig(
      ["--config", path, "--node-renew-ms", "500"],
      env({ ARCP_NODE_ID: "n1" }),
    );
    deepEqual(toRuntimeOptions(config).node, {
      id: "n1",
      url: "wss://n1.example/arcp",
      leaseMs: 5000,
      renewMs: 500,
    });
  });
  equal(toRuntimeOptions(await readServeConfig([], env({}))).node, undefined);
  await rejects(() => readServeConfig(["--node-id", "a b"], env({})), Error, "--node-id");
  await rejects(
    () => readServeConfig(["--node-lease-ms", "1000", "--node-renew-ms", "1000"], env({})),
    Error,
    "--node-renew-ms must be below --node-lease-ms",
  );
});
