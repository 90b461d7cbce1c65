/**
 * `arcp serve` start-up as a real process: each failure is one line on
 * stderr and exit code 1, never a stack trace; a start prints a summary
 * with skipped agents' reasons on one line each.
 */
import { equal, match, ok } from "assert";
import { ROOT } from "../../testing/server.ts";
import { runCli, spawnCli } from "./_cli.ts";

/** Asserts a start that failed: exit 1, exactly one line on stderr, no stack. */
async function refused(args: string[], expected: RegExp): Promise<string> {
  const run = await runCli(["serve", ...args], {});
  const lines = run.stderr.trimEnd().split("\n");
  equal(run.code, 1, run.stderr);
  equal(lines.length, 1, `more than one line:\n${run.stderr}`);
  match(lines[0], /^arcp serve: /);
  match(lines[0], expected);
  ok(!/\bat \S+:\d+:\d+/.test(run.stderr), `a stack trace:\n${run.stderr}`);
  return lines[0];
}

async function withDir(use: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_startup_" });
  try {
    await use(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const AGENTS = ["--agents", `${ROOT}/agents`];

Deno.test("a port already in use is one line naming the port and what to do", async () => {
  await withDir(async (dir) => {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = String((taken.addr as Deno.NetAddr).port);
      await refused(
        ["--port", port, "--kv", `${dir}/arcp.kv`, ...AGENTS],
        new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use.*--port`),
      );
    } finally {
      taken.close();
    }
  });
});

Deno.test("a KV path that cannot be created is one line naming it", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "not a folder");
    await refused(
      ["--port", "0", "--kv", `${dir}/file/arcp.kv`, ...AGENTS],
      /cannot create the KV folder .*file.*--kv/,
    );
  });
});

Deno.test("a corrupt KV file is one line naming the file and arcp doctor", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/arcp.kv`, "garbage ".repeat(1000));
    await refused(["--port", "0", "--kv", `${dir}/arcp.kv`, ...AGENTS], /arcp\.kv.*arcp doctor/);
  });
});

Deno.test("a missing agents folder is one line naming it", async () => {
  await withDir(async (dir) => {
    await refused(
      ["--port", "0", "--kv", `${dir}/arcp.kv`, "--agents", `${dir}/nope`],
      /agents folder .*nope does not exist; pass --agents DIR/,
    );
  });
});

Deno.test("one agent name@version defined twice is one line naming both files", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/agents`);
    const echo = new URL(`file://${ROOT}/agents/echo/v1.ts`).href;
    await Deno.writeTextFile(`${dir}/agents/a.ts`, `export { default } from "${echo}";\n`);
    await Deno.writeTextFile(`${dir}/agents/b.ts`, `export { default } from "${echo}";\n`);
    const line = await refused(
      ["--port", "0", "--kv", `${dir}/arcp.kv`, "--agents", `${dir}/agents`],
      /agent echo@\S+ is defined twice/,
    );
    match(line, /a\.ts.*b\.ts/);
  });
});

Deno.test("a host that does not resolve is one line naming it", async () => {
  await withDir(async (dir) => {
    await refused(
      ["--host", "no-such-host.invalid", "--port", "0", "--kv", `${dir}/arcp.kv`, ...AGENTS],
      /cannot listen on no-such-host\.invalid:0: .*check --host/,
    );
  });
});

Deno.test("TLS files that are missing or not PEM are one line naming them", async () => {
  await withDir(async (dir) => {
    const base = ["--port", "0", "--kv", `${dir}/arcp.kv`, ...AGENTS];
    await refused(
      [...base, "--tls-cert", `${dir}/missing.pem`, "--tls-key", `${dir}/missing.key`],
      /TLS file .*missing\.pem/,
    );
    await Deno.writeTextFile(`${dir}/cert.pem`, "not a certificate");
    await Deno.writeTextFile(`${dir}/key.pem`, "not a key");
    await refused(
      [...base, "--tls-cert", `${dir}/cert.pem`, "--tls-key", `${dir}/key.pem`],
      /TLS files .*cert\.pem and .*key\.pem are not a PEM certificate/,
    );
  });
});

Deno.test("a bad config file is one line: the file, the key and what is wrong", async () => {
  await withDir(async (dir) => {
    const file = `${dir}/arcp.json`;
    const base = ["--port", "0", "--kv", `${dir}/arcp.kv`, ...AGENTS, "--config", file];
    await Deno.writeTextFile(file, JSON.stringify({ quotas: { maxEventsPerJob: 0 } }));
    await refused(base, /arcp\.json: quotas\.maxEventsPerJob: expected a positive integer$/);
    await Deno.writeTextFile(file, JSON.stringify({ quotas: { maxEvents: 5 } }));
    await refused(base, /arcp\.json: quotas\.maxEvents: unknown setting/);
    await Deno.writeTextFile(file, "{ not json");
    await refused(base, /arcp\.json: not valid JSON/);
  });
});

Deno.test("start-up prints URL, KV, sandbox mode, agents with versions, and skipped agents on one line each", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/agents`);
    const echo = new URL(`file://${ROOT}/agents/echo/v1.ts`).href;
    await Deno.writeTextFile(`${dir}/agents/echo.ts`, `export { default } from "${echo}";\n`);
    await Deno.writeTextFile(
      `${dir}/agents/broken.ts`,
      `throw new Error("boom at import");\nexport default {};\n`,
    );
    const serve = spawnCli([
      "serve",
      "--port",
      "0",
      "--kv",
      `${dir}/arcp.kv`,
      "--agents",
      `${dir}/agents`,
      "--token",
      "t=alice",
    ], {});
    await serve.waitFor(/listening on ws:\/\/127\.0\.0\.1:\d+\/arcp/);
    serve.kill("SIGTERM");
    const run = await serve.done();
    match(run.stdout, /^arcp serve ws:\/\/127\.0\.0\.1:\d+\/arcp$/m);
    match(run.stdout, new RegExp(`^  kv: +${dir}/arcp\\.kv$`, "m"));
    match(run.stdout, /^ {2}sandbox: +process$/m);
    match(run.stdout, /^ {2}agents: +echo@1\.0\.0$/m);
    const skipped = run.stdout.split("\n").filter((l) => l.startsWith("  skipped:"));
    equal(skipped.length, 1, run.stdout);
    match(skipped[0], /broken\.ts: threw at import: Error: boom at import$/);
    for (const noise of ["Uncaught", "data:", "base64"]) {
      ok(!run.stdout.includes(noise) && !run.stderr.includes(noise), `${noise} printed`);
    }
  });
});
