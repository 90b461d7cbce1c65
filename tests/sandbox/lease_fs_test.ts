/**
 * The inner wall for ctx.fs and ctx.fetch: real `ops` agents in real
 * sandbox hosts, over a real WebSocket. The outer wall (Deno permissions)
 * grants the static prefix of each glob; these tests show that the runtime
 * still checks the exact glob on every operation, that a refusal is a
 * catchable `LeaseError PERMISSION_DENIED` and that the client sees it as a
 * `tool_result` error.
 */
import { deepEqual, equal, ok } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";
import { failure, LEASE_AGENTS, runOps, toolErrors, value } from "../jobs/_lease.ts";

const DENIED = "LeaseError PERMISSION_DENIED";

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test("ctx.fs honours the exact lease glob, not the prefix Deno grants", async (t) => {
  await using server = await startServer({ agentsDir: LEASE_AGENTS });
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_lease_fs_" }));
  await using c = await connect(server.url);
  await Deno.mkdir(`${dir}/data/sub`, { recursive: true });
  await Deno.mkdir(`${dir}/tree/old/inner`, { recursive: true });
  await Deno.writeTextFile(`${dir}/data/a.txt`, "alpha");
  await Deno.writeTextFile(`${dir}/data/sub/b.txt`, "bravo");
  await Deno.writeTextFile(`${dir}/data/a.csv`, "1,2");
  await Deno.writeTextFile(`${dir}/tree/keep.txt`, "keep");
  await Deno.writeTextFile(`${dir}/outside.txt`, "outside");
  const globs = [`${dir}/data/*.txt`, `${dir}/tree/**`];

  try {
    await t.step("every ctx.fs operation works inside the globs", async () => {
      const { outcomes, events } = await runOps(c, { "fs.read": globs, "fs.write": globs }, [
        { op: "readText", path: `${dir}/data/a.txt` },
        { op: "readBytes", path: `${dir}/data/a.txt` },
        { op: "stat", path: `${dir}/data/a.txt` },
        { op: "writeText", path: `${dir}/data/c.txt`, text: "charlie" },
        { op: "writeBytes", path: `${dir}/data/d.txt`, text: "delta" },
        { op: "mkdir", path: `${dir}/tree/new/deep` },
        { op: "remove", path: `${dir}/tree/old` },
        { op: "readDir", path: `${dir}/tree` },
        { op: "readText", path: `${dir}/data/c.txt` },
      ]);
      const values = outcomes.map((o, i) => value(o, `op ${i}`));
      deepEqual(values, [
        "alpha",
        5,
        { size: 5, isFile: true, isDirectory: false },
        null,
        null,
        null,
        null,
        ["keep.txt", "new"],
        "charlie",
      ]);
      equal(await Deno.readTextFile(`${dir}/data/d.txt`), "delta");
      ok((await Deno.stat(`${dir}/tree/new/deep`)).isDirectory);
      ok(!await exists(`${dir}/tree/old`));
      deepEqual(toolErrors({ events } as never), []);
    });

    await t.step(
      "a path under the granted prefix but outside the glob is PERMISSION_DENIED",
      async () => {
        const ran = await runOps(c, { "fs.read": globs, "fs.write": globs }, [
          { op: "readText", path: `${dir}/data/sub/b.txt` },
          { op: "readBytes", path: `${dir}/data/a.csv` },
          { op: "stat", path: `${dir}/data/sub/b.txt` },
          { op: "readDir", path: `${dir}/data` },
          { op: "writeText", path: `${dir}/data/sub/x.txt`, text: "x" },
          { op: "writeBytes", path: `${dir}/data/x.csv`, text: "x" },
          { op: "mkdir", path: `${dir}/data/sub/made` },
          { op: "remove", path: `${dir}/data/sub` },
          { op: "readText", path: `${dir}/outside.txt` },
          { op: "writeText", path: `${dir}/outside.txt`, text: "owned" },
          { op: "readText", path: `${dir}/data/../outside.txt` },
          { op: "readText", path: `${dir}/data/a.txt` },
        ]);
        const last = ran.outcomes.pop()!;
        deepEqual(
          ran.outcomes.map((o, i) => failure(o, `op ${i}`)),
          ran.outcomes.map(() => DENIED),
        );
        equal(value(last), "alpha", "the agent caught every refusal and went on");
        for (const o of ran.outcomes) {
          ok("error" in o && o.error.message.length > 0);
        }
        deepEqual(toolErrors(ran), ran.outcomes.map(() => "PERMISSION_DENIED"));
        const results = ran.events.filter((e) => e.kind === "tool_result");
        equal(new Set(results.map((e) => e.body.call_id)).size, results.length);
        ok(!await exists(`${dir}/data/sub/x.txt`));
        ok(!await exists(`${dir}/data/x.csv`));
        ok(!await exists(`${dir}/data/sub/made`));
        ok(await exists(`${dir}/data/sub/b.txt`));
        equal(await Deno.readTextFile(`${dir}/outside.txt`), "outside");
      },
    );

    await t.step("a read-only lease cannot write, create or remove", async () => {
      const ran = await runOps(c, { "fs.read": globs }, [
        { op: "readText", path: `${dir}/data/a.txt` },
        { op: "writeText", path: `${dir}/data/a.txt`, text: "overwritten" },
        { op: "writeBytes", path: `${dir}/data/e.txt`, text: "echo" },
        { op: "mkdir", path: `${dir}/tree/ro` },
        { op: "remove", path: `${dir}/tree/keep.txt` },
      ]);
      equal(value(ran.outcomes[0]), "alpha");
      deepEqual(ran.outcomes.slice(1).map((o) => failure(o)), [DENIED, DENIED, DENIED, DENIED]);
      deepEqual(toolErrors(ran), Array(4).fill("PERMISSION_DENIED"));
      equal(await Deno.readTextFile(`${dir}/data/a.txt`), "alpha");
      ok(!await exists(`${dir}/data/e.txt`));
      ok(!await exists(`${dir}/tree/ro`));
      ok(await exists(`${dir}/tree/keep.txt`));
    });

    await t.step("an uncaught refusal ends the job with PERMISSION_DENIED", async () => {
      const acc = await c.submit({
        agent: "ops",
        input: { ops: [{ op: "readText", path: `${dir}/data/sub/b.txt` }], rethrow: true },
        lease_request: { "fs.read": globs },
      });
      equal(acc.type, "job.accepted");
      const terminal = (await c.untilTerminal(acc.job_id!)).at(-1)!;
      equal(terminal.type, "job.error");
      equal(terminal.payload.final_status, "error");
      equal(terminal.payload.code, "PERMISSION_DENIED");
      equal(terminal.payload.retryable, false);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ctx.fetch honours the exact URL glob and checks every redirect hop", async (t) => {
  await using server = await startServer({ agentsDir: LEASE_AGENTS });
  const hits: string[] = [];
  const ac = new AbortController();
  const listen = { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} };
  const redirect = (status: number, location: string) =>
    new Response(null, { status, headers: { location } });
  // A second origin (another port), leased too.
  const other = Deno.serve(listen, (req) => {
    hits.push(`other ${new URL(req.url).pathname}`);
    return new Response(`auth=${req.headers.get("authorization")}`);
  });
  const otherBase = `http://127.0.0.1:${other.addr.port}`;
  const web = Deno.serve(listen, async (req) => {
    const path = new URL(req.url).pathname;
    hits.push(path);
    switch (path) {
      case "/ok/hello":
        return new Response("hello");
      case "/ok/to-secret":
        return redirect(302, "/secret");
      case "/ok/to-hello":
        return redirect(302, "/ok/hello");
      case "/ok/to-other":
        return redirect(302, `${otherBase}/ok/auth`);
      case "/ok/to-auth":
        return redirect(307, "/ok/auth");
      case "/ok/auth":
        return new Response(`auth=${req.headers.get("authorization")}`);
      case "/ok/see-other":
        return redirect(303, "/ok/method");
      case "/ok/temporary":
        return redirect(307, "/ok/method");
      case "/ok/method":
        return new Response(
          `${req.method} ${await req.text()} ${req.headers.get("content-type") ?? "-"}`,
        );
      case "/secret":
        return new Response("secret");
      default:
        return new Response("not found", { status: 404 });
    }
  });
  const base = `http://127.0.0.1:${web.addr.port}`;
  const lease = { "net.fetch": [`${base}/ok/**`, `${otherBase}/ok/**`] };
  await using c = await connect(server.url);
  try {
    await t.step("a URL inside the glob is fetched, following leased redirects", async () => {
      const { outcomes } = await runOps(c, lease, [
        { op: "fetch", url: `${base}/ok/hello` },
        { op: "fetch", url: `${base}/ok/to-hello` },
        { op: "fetch", url: `${base}/ok/missing` },
      ]);
      deepEqual(outcomes.map((o) => value(o)), [
        { status: 200, body: "hello" },
        { status: 200, body: "hello" },
        { status: 404, body: "not found" },
      ]);
    });

    await t.step("another path on the same host is PERMISSION_DENIED", async () => {
      hits.length = 0;
      const ran = await runOps(c, lease, [
        { op: "fetch", url: `${base}/secret` },
        { op: "fetch", url: `${base}/ok/../secret` },
        { op: "fetch", url: `${base}/okay` },
      ]);
      deepEqual(ran.outcomes.map((o) => failure(o)), [DENIED, DENIED, DENIED]);
      deepEqual(toolErrors(ran), ["PERMISSION_DENIED", "PERMISSION_DENIED", "PERMISSION_DENIED"]);
      deepEqual(hits, [], "nothing reached the server");
    });

    await t.step("a redirect to a path outside the glob is PERMISSION_DENIED", async () => {
      hits.length = 0;
      const ran = await runOps(c, lease, [{ op: "fetch", url: `${base}/ok/to-secret` }]);
      equal(failure(ran.outcomes[0]), DENIED);
      deepEqual(toolErrors(ran), ["PERMISSION_DENIED"]);
      deepEqual(hits, ["/ok/to-secret"], "the redirect target was never requested");
    });

    await t.step(
      "redirect modes: error rejects, manual returns the redirect unchecked",
      async () => {
        hits.length = 0;
        const ran = await runOps(c, lease, [
          { op: "fetch", url: `${base}/ok/to-hello`, init: { redirect: "error" } },
          { op: "fetch", url: `${base}/ok/to-secret`, init: { redirect: "manual" } },
        ]);
        equal(failure(ran.outcomes[0]), "TypeError null");
        deepEqual(value(ran.outcomes[1]), { status: 302, body: "" });
        deepEqual(toolErrors(ran), []);
        deepEqual(hits, ["/ok/to-hello", "/ok/to-secret"], "no redirect was followed");
      },
    );

    await t.step("Authorization is not carried to another origin by a redirect", async () => {
      hits.length = 0;
      const init = { headers: { authorization: "Bearer s3cret" } };
      const { outcomes } = await runOps(c, lease, [
        { op: "fetch", url: `${base}/ok/to-auth`, init },
        { op: "fetch", url: `${base}/ok/to-other`, init },
      ]);
      deepEqual(outcomes.map((o) => value(o)), [
        { status: 200, body: "auth=Bearer s3cret" },
        { status: 200, body: "auth=null" },
      ]);
      deepEqual(hits, ["/ok/to-auth", "/ok/auth", "/ok/to-other", "other /ok/auth"]);
    });

    await t.step("a 303 turns a POST into a bodiless GET; a 307 keeps it", async () => {
      const init = { method: "POST", body: "payload", headers: { "content-type": "text/plain" } };
      const { outcomes } = await runOps(c, lease, [
        { op: "fetch", url: `${base}/ok/see-other`, init },
        { op: "fetch", url: `${base}/ok/temporary`, init },
      ]);
      deepEqual(outcomes.map((o) => value(o)), [
        { status: 200, body: "GET  -" },
        { status: 200, body: "POST payload text/plain" },
      ]);
    });
  } finally {
    ac.abort();
    await web.finished;
    await other.finished;
  }
});

Deno.test("the runtime's own state is out of reach whatever the lease", async (t) => {
  await using server = await startServer({ agentsDir: LEASE_AGENTS });
  await using c = await connect(server.url);
  const kvFile = await Deno.realPath(server.kvPath);
  const kvDir = await Deno.realPath(server.dir);
  ok((await Deno.stat(kvFile)).size > 0);

  // Deno cannot carve the KV folder out of a granted folder, so a lease
  // whose grant would cover it is refused at submit rather than run with a
  // silently empty grant.
  for (
    const [label, lease, named] of [
      ["a lease on the KV folder", { "fs.read": [`${kvDir}/**`] }, kvDir],
      ["a lease on /**", { "fs.read": ["/**"] }, "/proc"],
    ] as Array<[string, Record<string, string[]>, string]>
  ) {
    await t.step(`${label} is refused at submit, naming the protected path`, async () => {
      const e = await c.submit({ agent: "ops", input: { ops: [] }, lease_request: lease });
      equal(e.type, "job.error", JSON.stringify(e.payload));
      equal(e.payload.code, "PERMISSION_DENIED");
      equal(e.payload.details.protected_path, named);
      ok(e.payload.message.includes(named), e.payload.message);
    });
  }

  await t.step("a job leased a sibling folder reads neither the KV file nor /proc", async () => {
    const sibling = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_sibling_" }));
    try {
      const { outcomes } = await runOps(c, { "fs.read": [`${sibling}/**`] }, [
        { op: "plainRead", path: kvFile },
        { op: "readBytes", path: kvFile },
        { op: "plainRead", path: `${kvFile}-wal` },
        { op: "readDir", path: kvDir },
        { op: "plainRead", path: "/proc/self/status" },
        { op: "readText", path: "/proc/self/status" },
      ]);
      for (const [i, o] of outcomes.entries()) {
        const refused = "error" in o && (o.error.name === "NotCapable" ||
          (o.error.name === "LeaseError" && o.error.code === "PERMISSION_DENIED"));
        ok(refused, `op ${i}: ${JSON.stringify(o)}`);
      }
      const acc = await c.submit({
        agent: "ops",
        input: { ops: [{ op: "plainRead", path: kvFile }], rethrow: true },
        lease_request: { "fs.read": [`${sibling}/**`] },
      });
      equal(acc.type, "job.accepted");
      const terminal = (await c.untilTerminal(acc.job_id!)).at(-1)!;
      equal(terminal.type, "job.error");
      equal(terminal.payload.code, "PERMISSION_DENIED");
    } finally {
      await Deno.remove(sibling, { recursive: true });
    }
  });
});

Deno.test("an agent that awaits a long sleep is not killed by the liveness watchdog", async () => {
  await using server = await startServer({ agentsDir: LEASE_AGENTS });
  await using c = await connect(server.url);
  const acc = await c.submit({ agent: "sleeper", input: { ms: 8000 } });
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  const terminal = (await c.untilTerminal(acc.job_id!, 30_000)).at(-1)!;
  equal(terminal.type, "job.result", JSON.stringify(terminal.payload));
  deepEqual(terminal.payload.result, { slept_ms: 8000 });
});
