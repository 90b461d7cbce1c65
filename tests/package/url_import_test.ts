/**
 * The package as a registry user gets it: the published files, served over
 * HTTP, imported by URL from a project outside this repository with its own
 * empty Deno cache. The library runs echo, reader (with a lease) and ticker
 * jobs in the default process sandbox, whose hosts never download; the
 * `./client` and `./agent` exports work by URL; and the CLI serves from the
 * package URL.
 */
import { deepEqual, equal, ok } from "assert";
import { RUN_FLAGS } from "../../src/cli/flags.ts";
import { ArcpClient } from "../../src/client/mod.ts";
import { ROOT } from "../../testing/server.ts";
import { type PackageServer, servePackage } from "./_package_server.ts";

/** The reference agents a user copies into their project. */
const AGENTS = ["echo/v1.ts", "reader.ts", "ticker.ts", "_sleep.ts"];

/**
 * A user's project: a folder outside the repo with its own empty Deno
 * cache and a deno.json that maps the package (as `jsr:@arcp/runtime`
 * would) for agents that import `@arcp/runtime/agent`.
 */
interface Project {
  dir: string;
  env: Record<string, string>;
}

async function makeProject(pkg: PackageServer): Promise<Project> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_user_" });
  ok(!dir.startsWith(`${ROOT}/`), "the project must live outside the repository");
  await Deno.writeTextFile(
    `${dir}/deno.json`,
    JSON.stringify({
      imports: {
        "@arcp/runtime": `${pkg.url}/mod.ts`,
        "@arcp/runtime/agent": `${pkg.url}/src/agent.ts`,
        "@arcp/runtime/client": `${pkg.url}/src/client/mod.ts`,
      },
    }),
  );
  for (const name of AGENTS) {
    const res = await fetch(`${pkg.url}/agents/${name}`);
    ok(res.ok, `agents/${name} is published`);
    const source = (await res.text()).replace(/"(\.\.\/)+src\/agent\.ts"/, '"@arcp/runtime/agent"');
    const target = `${dir}/agents/${name}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(target, source);
  }
  await Deno.mkdir(`${dir}/deno_dir`);
  // The user's own environment (proxies, CA certificates) with an empty cache of their own.
  return { dir, env: { ...Deno.env.toObject(), DENO_DIR: `${dir}/deno_dir`, NO_COLOR: "1" } };
}

/** What a user's script does: the runtime, a client, three jobs. */
function userScript(pkg: PackageServer, dataDir: string): string {
  return `
import { createRuntime } from "${pkg.url}/mod.ts";
import { ArcpClient } from "${pkg.url}/src/client/mod.ts";

const runtime = await createRuntime({
  kvPath: "./state/arcp.kv",
  agentsDir: "./agents",
  tokens: { "user-token": "user" },
});
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, runtime.fetch);
const client = await ArcpClient.connect(\`ws://127.0.0.1:\${server.addr.port}/arcp\`, {
  token: "user-token",
});
const echo = await client.submit({ agent: "echo", input: { from: "url" } }).result;
const reader = await client.submit({
  agent: "reader",
  input: { path: ${JSON.stringify(`${dataDir}/hello.txt`)} },
  leaseRequest: { "fs.read": [${JSON.stringify(`${dataDir}/**`)}] },
}).result;
const ticker = client.submit({ agent: "ticker", input: { count: 3 } });
let ticks = 0;
for await (const event of ticker.events()) if (event.payload.kind === "progress") ticks++;
const tickerResult = await ticker.result;
await client.close();
await server.shutdown();
await runtime.close();
console.log(JSON.stringify({
  inventory: runtime.inventory().map((a) => a.name),
  echo: echo.result,
  reader: reader.result,
  ticker: tickerResult.result,
  ticks,
}));
`;
}

async function output(child: Deno.ChildProcess): Promise<{ code: number; text: string }> {
  const [status, out, err] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  return { code: status.code, text: `${out}\n--- stderr ---\n${err}` };
}

Deno.test("the published package works imported by URL, with no module pre-cached", async (t) => {
  const pkg = await servePackage();
  const project = await makeProject(pkg);
  const allowImport = `--allow-import=${new URL(pkg.url).host}`;
  try {
    ok(pkg.files.includes("src/sandbox/host/main.ts"), "the sandbox host is published");

    await t.step(
      "createRuntime with the process sandbox runs echo, reader and ticker",
      async () => {
        const dataDir = `${project.dir}/data`;
        await Deno.mkdir(dataDir);
        await Deno.mkdir(`${project.dir}/state`);
        const hello = new TextEncoder().encode("hello from a leased file\n");
        await Deno.writeFile(`${dataDir}/hello.txt`, hello);
        await Deno.writeTextFile(`${project.dir}/main.ts`, userScript(pkg, dataDir));
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", ...RUN_FLAGS, allowImport, "main.ts"],
          cwd: project.dir,
          env: project.env,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const { code, text } = await output(child);
        equal(code, 0, text);
        const report = JSON.parse(text.split("\n").findLast((l) => l.startsWith("{"))!);
        deepEqual(report.inventory.sort(), ["echo", "reader", "ticker"]);
        deepEqual(report.echo, { echo: { from: "url" }, version: "1.0.0" });
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", hello));
        deepEqual(report.reader, {
          bytes: hello.byteLength,
          sha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
        });
        deepEqual(report.ticker, { ticks: 3 });
        equal(report.ticks, 3);
      },
    );

    await t.step("the CLI serves sessions and the dashboard from the package URL", async () => {
      // Run from a URL, the CLI has no deno.json: agents name the package in full.
      const agents = `${project.dir}/cli_agents`;
      await Deno.mkdir(agents);
      const echo = await Deno.readTextFile(`${project.dir}/agents/echo/v1.ts`);
      await Deno.writeTextFile(
        `${agents}/echo.ts`,
        echo.replace('"@arcp/runtime/agent"', `"${pkg.url}/src/agent.ts"`),
      );
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...RUN_FLAGS,
          allowImport,
          `${pkg.url}/src/cli/main.ts`,
          "serve",
          "--port",
          "0",
          "--kv",
          `${project.dir}/cli_state/arcp.kv`,
          "--agents",
          agents,
          "--token",
          "cli-token=user",
        ],
        cwd: project.dir,
        env: project.env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      let url: string | undefined;
      while (url === undefined) {
        const { value, done } = await lines.read();
        if (done) throw new Error(`arcp serve exited:\n${seen}\n${await stderr}`);
        seen += value;
        url = seen.match(/listening on (ws:\/\/\S+\/arcp)/)?.[1];
      }
      try {
        await using client = await ArcpClient.connect(url, { token: "cli-token" });
        const done = await client.submit({ agent: "echo", input: { via: "cli" } }).result;
        deepEqual(done.result, { echo: { via: "cli" }, version: "1.0.0" });
        // The dashboard's files are text imports, so they came with the package's modules.
        const http = url.replace(/^ws:/, "http:").replace(/\/arcp$/, "");
        const page = await fetch(`${http}/`);
        equal(page.status, 200);
        ok((await page.text()).includes('src="/ui/app.js"'));
        const app = await fetch(`${http}/ui/app.js`);
        equal(app.status, 200);
        ok((await app.text()).includes('from "./api.js"'));
      } finally {
        child.kill("SIGTERM");
        await lines.cancel();
      }
      equal((await child.status).code, 0, await stderr);
    });
  } finally {
    await pkg.close();
    await Deno.remove(project.dir, { recursive: true });
  }
});
