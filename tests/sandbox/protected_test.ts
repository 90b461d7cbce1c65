/**
 * Runtime-protected state against real agents in real sandbox hosts
 * (issue 9, classes 6, 8 and 11): the runtime's own code, Deno's cache,
 * the deno executable, the KV folder and the runtime's own listener are
 * never granted; a lease naming them is refused at submit with the path
 * and the reason; an agent that tries anyway changes nothing another
 * principal runs; failed hellos never lock a valid token out.
 */
import { deepEqual, equal, match, ok } from "assert";
import { createRuntime, type Runtime } from "../../mod.ts";
import { silentLogger } from "../../src/logger.ts";
import { findDenoDir } from "../../src/sandbox/protected_paths.ts";
import { ROOT, TOKENS } from "../../testing/server.ts";
import { connect, type Env, WsClient } from "../../testing/ws_client.ts";

const AGENTS = `${ROOT}/tests/fixtures/protected`;
const VICTIM = `${AGENTS}/victim.ts`;

interface Served {
  url: string;
  port: number;
  kvDir: string;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Listens first, then creates the runtime with its listener, as `arcp serve` does. */
async function serveProtected(): Promise<Served> {
  const kvDir = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_protected_" }));
  const ready: { runtime?: Runtime } = {};
  const ac = new AbortController();
  const bound = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: bound.resolve },
    (req, info) => ready.runtime?.fetch(req, info) ?? new Response("starting", { status: 503 }),
  );
  const { hostname, port } = await bound.promise;
  const rt = ready.runtime = await createRuntime({
    kvPath: `${kvDir}/arcp.kv`,
    agentsDir: AGENTS,
    tokens: TOKENS,
    logger: silentLogger(),
    listeners: [{ hostname, port }],
  });
  return {
    url: `ws://127.0.0.1:${port}/arcp`,
    port,
    kvDir,
    async [Symbol.asyncDispose]() {
      await rt.close();
      ac.abort();
      await server.finished;
      await Deno.remove(kvDir, { recursive: true });
    },
  };
}

/** Submits and expects a refusal naming `named`. */
async function expectRefused(
  c: WsClient,
  lease: Record<string, string[]>,
  named: string,
): Promise<Env> {
  const e = await c.submit({ agent: "victim", input: { text: "x" }, lease_request: lease });
  equal(e.type, "job.error", `accepted ${JSON.stringify(lease)}`);
  equal(e.payload.code, "PERMISSION_DENIED", JSON.stringify(e.payload));
  ok(e.payload.message.includes(named), `${e.payload.message} should name ${named}`);
  return e;
}

async function result(c: WsClient, submit: Record<string, unknown>): Promise<Env> {
  const acc = await c.submit(submit);
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  return (await c.untilTerminal(acc.job_id!, 30_000)).at(-1)!;
}

Deno.test("leases over the runtime's own code are refused at submit, and tampering fails", async (t) => {
  await using server = await serveProtected();
  await using alice = await connect(server.url, "alice-token");
  await using bob = await connect(server.url, "bob-token");
  const denoDir = findDenoDir()!;
  const exe = Deno.execPath();
  const exeDir = exe.replace(/\/[^/]*$/, "");
  const scratch = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_scratch_" }));

  try {
    await t.step(
      "fs.write over the code, agents, DENO_DIR or deno is refused naming it",
      async () => {
        const cases: Array<[string, string]> = [
          [`${ROOT}/src/**`, ROOT],
          [`${AGENTS}/**`, AGENTS],
          [`${denoDir}/**`, denoDir],
          [exe, exe],
          [`${exeDir}/*`, exe],
          [`${ROOT}/deno.json`, `${ROOT}/deno.json`],
        ];
        for (const [pattern, named] of cases) {
          const e = await expectRefused(alice, { "fs.write": [pattern] }, named);
          equal(e.payload.details.pattern, pattern);
          ok(e.payload.details.reason, JSON.stringify(e.payload.details));
        }
        // Deno's cache holds other jobs' data: not even readable.
        await expectRefused(alice, { "fs.read": [`${denoDir}/**`] }, denoDir);
      },
    );

    await t.step("code is readable: an fs.read lease on the sources runs", async () => {
      const end = await result(alice, {
        agent: "reader",
        input: { path: VICTIM },
        lease_request: { "fs.read": [`${ROOT}/tests/fixtures/protected/**`] },
      });
      equal(end.type, "job.result", JSON.stringify(end.payload));
      match(end.payload.result, /name: "victim"/);
    });

    await t.step(
      "an agent writing there anyway is refused, and bob runs untouched code",
      async () => {
        const before = await Deno.readTextFile(VICTIM);
        const targets = [VICTIM, `${ROOT}/src/tamper_probe.ts`, `${denoDir}/tamper_probe`, exe];
        try {
          const end = await result(alice, {
            agent: "tamper",
            input: { targets, line: "\n(globalThis as { TAMPERED?: boolean }).TAMPERED = true;\n" },
            // A broad lease that is allowed: everything but the protected paths.
            lease_request: { "fs.write": [`${scratch}/**`], "fs.read": [`${ROOT}/**`] },
          });
          equal(end.type, "job.result", JSON.stringify(end.payload));
          for (const target of targets) {
            const { deno, ctx } = end.payload.result[target];
            match(deno, /^NotCapable/, `${target} via Deno: ${deno}`);
            match(ctx, /PERMISSION_DENIED|not grant|protected/, `${target} via ctx.fs: ${ctx}`);
          }
          equal(await Deno.readTextFile(VICTIM), before);
          for (const created of [`${ROOT}/src/tamper_probe.ts`, `${denoDir}/tamper_probe`]) {
            ok(!await Deno.lstat(created).then(() => true, () => false), created);
          }
          const honest = await result(bob, { agent: "victim", input: { text: "bob" } });
          equal(honest.type, "job.result", JSON.stringify(honest.payload));
          deepEqual(honest.payload.result, { echoed: "bob", tampered: false });
        } finally {
          if (await Deno.readTextFile(VICTIM) !== before) await Deno.writeTextFile(VICTIM, before);
        }
      },
    );
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});

Deno.test("a lease covering the KV folder is refused at submit; a sibling folder works", async () => {
  await using server = await serveProtected();
  await using c = await connect(server.url, "alice-token");
  // The README's `fs.read=/tmp/**` with the KV under /tmp: the grant Deno
  // would give (/tmp) contains the KV folder.
  const parent = server.kvDir.replace(/\/[^/]*$/, "");
  const e = await expectRefused(c, { "fs.read": [`${parent}/**`] }, server.kvDir);
  equal(e.payload.details.protected_path, server.kvDir);
  match(e.payload.message, /KV store/);
  await expectRefused(c, { "fs.read": [`${server.kvDir}/*.kv`] }, server.kvDir);

  const sibling = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_sibling_" }));
  try {
    await Deno.writeTextFile(`${sibling}/x.txt`, "sibling data");
    const end = await result(c, {
      agent: "reader",
      input: { path: `${sibling}/x.txt` },
      lease_request: { "fs.read": [`${sibling}/**`] },
    });
    equal(end.type, "job.result", JSON.stringify(end.payload));
    equal(end.payload.result, "sibling data");
    // The same job's agent reading the KV file directly meets Deno's wall.
    const kv = await result(c, {
      agent: "reader",
      input: { path: `${server.kvDir}/arcp.kv` },
      lease_request: { "fs.read": [`${sibling}/**`] },
    });
    equal(kv.type, "job.error");
    equal(kv.payload.code, "PERMISSION_DENIED");
  } finally {
    await Deno.remove(sibling, { recursive: true });
  }
});

Deno.test("no lease reaches the runtime's own listener", async () => {
  await using server = await serveProtected();
  await using c = await connect(server.url, "alice-token");
  const port = server.port;
  for (const host of ["127.0.0.1", "localhost", "[::1]", "0.0.0.0", "127.0.0.2", "a.localhost"]) {
    const e = await expectRefused(c, { "net.fetch": [`http://${host}:${port}/**`] }, `${port}`);
    match(e.payload.message, /runtime itself listens/);
  }
  await expectRefused(c, { "net.fetch": [`https://127.0.0.1:${port}/arcp`] }, `${port}`);

  // Another port of this machine may be leased; the runtime's port stays out of reach.
  await using other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const otherPort = other.addr.port;
  const end = await result(c, {
    agent: "fetcher",
    input: { url: `http://127.0.0.1:${port}/healthz` },
    lease_request: { "net.fetch": [`http://127.0.0.1:${otherPort}/**`] },
  });
  equal(end.type, "job.error", JSON.stringify(end.payload));
  equal(end.payload.code, "PERMISSION_DENIED");
});

Deno.test("twelve bad hellos are slowed, and a valid hello from the same address is welcomed promptly", async () => {
  await using server = await serveProtected();
  const took: number[] = [];
  for (let i = 0; i < 12; i++) {
    const c = new WsClient(server.url);
    await c.opened();
    const start = performance.now();
    equal((await c.hello(`wrong-${i}`)).payload.code, "UNAUTHENTICATED");
    took.push(performance.now() - start);
    await c.closed();
  }
  // The first ten are answered at once; the eleventh and twelfth are held.
  ok(took[10] >= 900, `11th bad hello answered after ${took[10]} ms`);
  ok(took[11] >= 1900, `12th bad hello answered after ${took[11]} ms`);

  const start = performance.now();
  await using bob = new WsClient(server.url);
  equal((await bob.hello("bob-token")).type, "session.welcome");
  const welcomedIn = performance.now() - start;
  ok(welcomedIn < 1500, `valid hello welcomed after ${welcomedIn} ms`);
});
