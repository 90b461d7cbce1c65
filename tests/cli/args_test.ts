/** Command-line parsing of `arcp submit`, `arcp jobs`, `arcp cancel` and `arcp serve`. */
import { deepEqual, equal, ok, rejects, throws } from "assert";
import { parseCancelArgs } from "../../src/cli/cancel.ts";
import { connectionSettings, DEFAULT_URL } from "../../src/cli/connection.ts";
import { parseJobsArgs } from "../../src/cli/jobs.ts";
import { readServeConfig, toRuntimeOptions } from "../../src/cli/serve_config.ts";
import { parseSubmitArgs } from "../../src/cli/submit.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("connection settings: flags beat the environment, which beats the default", () => {
  deepEqual(connectionSettings({}, env({ ARCP_TOKEN: "t" })), { url: DEFAULT_URL, token: "t" });
  deepEqual(
    connectionSettings({ url: "ws://h/arcp" }, env({ ARCP_URL: "ws://e/arcp", ARCP_TOKEN: "t" })),
    { url: "ws://h/arcp", token: "t" },
  );
  deepEqual(connectionSettings({ token: "f" }, env({ ARCP_TOKEN: "t" })).token, "f");
  throws(() => connectionSettings({}, env({})), TypeError);
});

Deno.test("arcp submit arguments become a submit request", () => {
  const parsed = parseSubmitArgs([
    "echo@1.0.0",
    "--input",
    '{"a":[1]}',
    "--lease",
    "fs.read=/a/**",
    "--lease",
    "fs.read=/b/x=y",
    "--lease",
    "net.fetch=https://example.com/**",
    "--expires-at",
    "2030-01-01T00:00:00Z",
    "--max-runtime-sec",
    "30",
    "--idempotency-key",
    "k",
  ], env({ ARCP_TOKEN: "t" }));
  deepEqual(parsed, {
    connection: { url: DEFAULT_URL, token: "t" },
    request: {
      agent: "echo@1.0.0",
      input: { a: [1] },
      leaseRequest: { "fs.read": ["/a/**", "/b/x=y"], "net.fetch": ["https://example.com/**"] },
      leaseConstraints: { expiresAt: "2030-01-01T00:00:00Z" },
      maxRuntimeSec: 30,
      idempotencyKey: "k",
    },
  });
  deepEqual(
    (parseSubmitArgs(["echo"], env({ ARCP_TOKEN: "t" })) as { request: unknown }).request,
    { agent: "echo", input: null },
  );
  equal(parseSubmitArgs(["--help"], env({})), "help");
});

Deno.test("bad arcp submit arguments are TypeErrors naming the flag", () => {
  const bad = [
    [],
    ["a", "b"],
    ["echo", "--input", "{"],
    ["echo", "--lease", "=x"],
    ["echo", "--lease", "fs.read="],
    ["echo", "--max-runtime-sec", "0"],
    ["echo", "--max-runtime-sec", "1.5"],
    ["echo", "--no-such-flag"],
  ];
  for (const args of bad) throws(() => parseSubmitArgs(args, env({ ARCP_TOKEN: "t" })), TypeError);
});

Deno.test("arcp jobs and arcp cancel arguments", () => {
  deepEqual(
    parseJobsArgs(
      ["--status", "running", "--status", "error", "--agent", "echo", "--limit", "5", "--json"],
      env({ ARCP_TOKEN: "t" }),
    ),
    {
      connection: { url: DEFAULT_URL, token: "t" },
      filter: { status: ["running", "error"], agent: "echo" },
      limit: 5,
      pageSize: 100,
      json: true,
    },
  );
  const defaults = parseJobsArgs(["--page-size", "5000"], env({ ARCP_TOKEN: "t" }));
  equal(defaults !== "help" && defaults.limit, Infinity);
  equal(defaults !== "help" && defaults.pageSize, 1000);
  throws(() => parseJobsArgs(["--status", "done"], env({ ARCP_TOKEN: "t" })), TypeError);
  throws(() => parseJobsArgs(["--limit", "-1"], env({ ARCP_TOKEN: "t" })), TypeError);
  deepEqual(parseCancelArgs(["job_1", "--reason", "r"], env({ ARCP_TOKEN: "t" })), {
    connection: { url: DEFAULT_URL, token: "t" },
    jobId: "job_1",
    reason: "r",
  });
  throws(() => parseCancelArgs([], env({ ARCP_TOKEN: "t" })), TypeError);
});

Deno.test("arcp serve sandbox flags: 0 warm processes is allowed, a negative count is refused", async () => {
  const config = await readServeConfig(
    [
      "--warm-pool",
      "0",
      "--sandbox-memory-mb",
      "300",
      "--sandbox-heap-mb",
      "128",
      "--warm-max",
      "4",
      "--jobs-per-process",
      "1",
      "--sandbox-wait-sec",
      "5",
      "--sandbox-queue-ms",
      "400",
      "--principal-max-jobs",
      "600",
      "--principal-max-sessions",
      "300",
    ],
    env({}),
  );
  const options = toRuntimeOptions(config);
  deepEqual(
    [options.hostHeapMb, options.memoryMb, options.warmPool, options.warmMax],
    [128, 300, 0, 4],
  );
  deepEqual([options.jobsPerProcess, options.sandboxWaitMs, options.sandboxQueueMs], [
    1,
    5000,
    400,
  ]);
  equal(options.jobs?.maxJobsPerPrincipal, 600);
  equal(options.sessions?.maxSessionsPerPrincipal, 300);
  const defaults = toRuntimeOptions(await readServeConfig([], env({})));
  for (const key of ["hostHeapMb", "memoryMb", "warmPool", "warmMax", "jobsPerProcess"] as const) {
    equal(defaults[key], undefined, key);
  }
  await rejects(
    () => readServeConfig(["--principal-max-jobs", "0"], env({})),
    /--principal-max-jobs/,
  );
  await rejects(() => readServeConfig(["--warm-pool", "-1"], env({})), /--warm-pool/);
  await rejects(
    () => readServeConfig(["--sandbox-memory-mb", "0"], env({})),
    /--sandbox-memory-mb/,
  );
});

Deno.test("arcp serve retention flags: days and hours as milliseconds, 0 or forever keeps", async () => {
  const config = await readServeConfig(
    [
      "--job-retention-days",
      "1.5",
      "--job-history-days",
      "forever",
      "--audit-retention-days",
      "0",
      "--idempotency-ttl-hours",
      "2",
    ],
    env({}),
  );
  const options = toRuntimeOptions(config);
  deepEqual(
    [options.jobRetentionMs, options.jobHistoryTtlMs, options.auditRetentionMs],
    [1.5 * 24 * 3600_000, 0, 0],
  );
  equal(options.jobs?.idempotencyTtlMs, 2 * 3600_000);
  const defaults = toRuntimeOptions(await readServeConfig([], env({})));
  deepEqual(
    [defaults.jobRetentionMs, defaults.jobHistoryTtlMs, defaults.auditRetentionMs, defaults.jobs],
    [undefined, undefined, undefined, undefined],
  );
  for (
    const [flag, value] of [
      ["--job-retention-days", "-1"],
      ["--job-retention-days", "week"],
      ["--audit-retention-days", ""],
      ["--idempotency-ttl-hours", "0"],
      ["--idempotency-ttl-hours", "forever"],
    ]
  ) {
    await rejects(
      () => readServeConfig([flag, value], env({})),
      new RegExp(flag),
      `${flag} ${value}`,
    );
  }
});

Deno.test("arcp serve JWT and anonymous flags: the secret from a file or the environment, never a flag; bad settings refused", async () => {
  const secret = "0123456789abcdef0123456789abcdef";
  const dir = await Deno.makeTempDir({ prefix: "arcp_jwt_flags_" });
  try {
    const file = `${dir}/jwt.secret`;
    await Deno.writeTextFile(file, `${secret}\n`);
    const config = await readServeConfig(
      [
        "--jwt-jwks-url",
        "https://idp.example.test/.well-known/jwks.json",
        "--jwt-secret-file",
        file,
        "--jwt-issuer",
        "https://idp.example.test",
        "--jwt-audience",
        "arcp",
        "--jwt-audience",
        "arcp-dev",
        "--jwt-principal-claim",
        "email",
        "--jwt-algorithms",
        "RS256, HS256",
        "--allow-anonymous",
        "--anonymous-max-jobs",
        "3",
      ],
      env({}),
    );
    deepEqual(config.auth, {
      jwt: {
        secret,
        jwksUrl: "https://idp.example.test/.well-known/jwks.json",
        issuer: "https://idp.example.test",
        audience: ["arcp", "arcp-dev"],
        principalClaim: "email",
        algorithms: ["RS256", "HS256"],
      },
      anonymous: { maxLiveJobs: 3 },
    });
    equal(config.generatedToken, undefined, "a dev token was generated beside the JWT setup");
    ok(config.configFiles.includes(file), "the secret file is not kept from leases");

    const fromEnv = await readServeConfig(["--allow-anonymous"], env({ ARCP_JWT_SECRET: secret }));
    deepEqual(fromEnv.auth, {
      jwt: {
        secret,
        jwksUrl: undefined,
        issuer: undefined,
        audience: undefined,
        principalClaim: undefined,
        algorithms: undefined,
      },
      anonymous: true,
    });
    equal((await readServeConfig([], env({}))).auth, undefined);

    await rejects(
      () => readServeConfig([], env({ ARCP_JWT_SECRET: "short" })),
      /JWT secret: expected at least 32 bytes/,
    );
    await rejects(
      () => readServeConfig(["--jwt-audience", "arcp"], env({})),
      /--jwt-audience needs --jwt-jwks-url/,
    );
    await rejects(
      () => readServeConfig(["--jwt-jwks-url", "http://idp.example.test/jwks"], env({})),
      /expected https:\/\//,
    );
    await rejects(
      () => readServeConfig(["--jwt-algorithms", "none"], env({ ARCP_JWT_SECRET: secret })),
      /JWT algorithm "none" is not supported/,
    );
    await rejects(
      () => readServeConfig(["--jwt-algorithms", "RS256"], env({ ARCP_JWT_SECRET: secret })),
      /RS256 needs a JWKS URL/,
    );
    await rejects(
      () => readServeConfig(["--anonymous-max-jobs", "2"], env({})),
      /--allow-anonymous/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
