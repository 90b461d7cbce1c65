/**
 * Wrong or slow errors (issue 9, class 10), against a real server with
 * sandbox host processes: prototype keys on a lease, over-deep bodies,
 * `__proto__` keys in bodies, results held to JSON, and ctx.fs refusals that
 * must not say where a symlink outside the lease points. An honest ticker of
 * another principal runs beside each case.
 */
import { deepEqual, doesNotMatch, equal, match, ok } from "assert";
import { ROOT, startServer, type TestServer } from "../../testing/server.ts";
import { connect, type Env } from "../../testing/ws_client.ts";

const AGENTS = `${ROOT}/tests/fixtures/agent_errors`;

/** Runs a job of alice's beside bob's honest ticker; returns alice's envelopes. */
async function besideTicker(
  server: TestServer,
  submit: Record<string, unknown>,
): Promise<Env[]> {
  const bob = await connect(server.url, "bob-token");
  const alice = await connect(server.url, "alice-token");
  try {
    const ticker = await bob.submit({ agent: "ticker", input: { count: 10, interval_ms: 20 } });
    equal(ticker.type, "job.accepted", JSON.stringify(ticker.payload));
    const acc = await alice.submit(submit);
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    const events = await alice.untilTerminal(acc.job_id!, 30_000);
    const bobEnd = (await bob.untilTerminal(ticker.job_id!, 30_000)).at(-1)!;
    equal(bobEnd.type, "job.result", JSON.stringify(bobEnd.payload));
    return events;
  } finally {
    await alice.close();
    await bob.close();
  }
}

/** `[[[...1]]]`, `depth` arrays deep. */
function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** A value with an own `__proto__` key, as JSON.parse makes it. */
const PROTO_BODY = () => JSON.parse('{"__proto__":{"polluted":true},"plain":1}');

Deno.test("agent errors are prompt, specific and truthful", async (t) => {
  await using server = await startServer({ agentsDir: AGENTS, hostHeapMb: 128 });

  for (const ns of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
    await t.step(`ctx.authorize(${JSON.stringify(ns)}) is PERMISSION_DENIED`, async () => {
      const events = await besideTicker(server, {
        agent: "authorizer",
        input: { ns, target: "x" },
        lease_request: { "fs.read": ["/nowhere/**"] },
      });
      const end = events.at(-1)!;
      equal(end.type, "job.result", JSON.stringify(end.payload));
      equal(end.payload.result.granted, false);
      equal(end.payload.result.code, "PERMISSION_DENIED", JSON.stringify(end.payload.result));
      match(end.payload.result.message, /lease does not grant/);
    });
  }

  await t.step("a lease request naming __proto__ is refused at submit", async () => {
    const alice = await connect(server.url, "alice-token");
    try {
      const answer = await alice.submit({
        agent: "authorizer",
        input: { ns: "fs.read", target: "/x" },
        lease_request: JSON.parse('{"__proto__":["/**"]}'),
      });
      equal(answer.type, "job.error", JSON.stringify(answer.payload));
      equal(answer.payload.code, "INVALID_REQUEST");
      match(answer.payload.message, /__proto__/);
    } finally {
      await alice.close();
    }
  });

  await t.step("a 3000-deep input is refused at submit, promptly, naming the limit", async () => {
    const alice = await connect(server.url, "alice-token");
    try {
      const started = performance.now();
      const answer = await alice.submit({ agent: "echo", input: { deep: nested(3000) } });
      equal(answer.type, "job.error", JSON.stringify(answer.payload).slice(0, 300));
      equal(answer.payload.code, "INVALID_REQUEST");
      match(answer.payload.message, /deeper than 64 levels/);
      equal(answer.payload.details.cap, "input_depth");
      // Prompt means no job ever started: the answer is the submit's own refusal.
      ok(performance.now() - started < 5000, "the refusal took seconds");
    } finally {
      await alice.close();
    }
  });

  for (const as of ["event", "result"] as const) {
    await t.step(`an over-deep agent ${as} ends the job with a specific error`, async () => {
      const end = (await besideTicker(server, { agent: "deep", input: { depth: 3000, as } }))
        .at(-1)!;
      equal(end.type, "job.error", JSON.stringify(end.payload));
      equal(end.payload.code, "INTERNAL_ERROR");
      match(end.payload.message, /deeper than 64 levels/);
      equal(end.payload.details.cap, `${as}_depth`);
    });
  }

  await t.step("__proto__ keys round-trip through input, event bodies and the result", async () => {
    const events = await besideTicker(server, { agent: "echo", input: PROTO_BODY() });
    const raw = (e: Env) => JSON.stringify(e.payload);
    const log = events.find((e) => e.payload?.kind === "log")!;
    ok(Object.hasOwn(log.payload.body.attributes, "__proto__"), raw(log));
    deepEqual(log.payload.body.attributes.__proto__, { polluted: true });
    const vendor = events.find((e) => e.payload?.kind === "x-vendor.echo")!;
    ok(Object.hasOwn(vendor.payload.body, "__proto__"), raw(vendor));
    const end = events.at(-1)!;
    equal(end.type, "job.result", raw(end));
    ok(Object.hasOwn(end.payload.result, "__proto__"), raw(end));
    equal(end.payload.result.plain, 1);
  });

  await t.step(
    "a result is held to JSON: dates as strings, functions and undefined dropped",
    async () => {
      const events = await besideTicker(server, { agent: "json-result", input: PROTO_BODY() });
      const end = events.at(-1)!;
      equal(end.type, "job.result", JSON.stringify(end.payload));
      deepEqual(Object.keys(end.payload.result), ["input", "at", "list"]);
      equal(end.payload.result.at, "1970-01-01T00:00:00.000Z");
      deepEqual(end.payload.result.list, [null]);
      ok(Object.hasOwn(end.payload.result.input, "__proto__"), JSON.stringify(end.payload));
    },
  );

  await t.step("ctx.fs refusals do not say where an escaping symlink points", async () => {
    const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_leak_" }));
    const secret = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_secret_place_" }));
    await Deno.writeTextFile(`${secret}/key.txt`, "s3cret");
    await Deno.mkdir(`${dir}/in`);
    const alice = await connect(server.url, "alice-token");
    try {
      const lease = { "fs.read": [`${dir}/in/**`] };
      const cases: Array<[string, string]> = [
        ["link", `${dir}/in/link/key.txt`],
        ["dangling", `${dir}/in/dangling/new.txt`],
      ];
      for (const [name, path] of cases) {
        const go = `${dir}/in/go-${name}`;
        const acc = await alice.submit({
          agent: "fs-reader",
          input: { path, go },
          lease_request: lease,
        });
        equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
        // Planted after the job's start scan, as a link racing the scan would be.
        const w = await alice.next((e) =>
          e.job_id === acc.job_id &&
          (e.payload?.body?.phase === "waiting" || e.type === "job.error")
        );
        equal(w.type, "job.event", JSON.stringify(w.payload));
        await Deno.symlink(name === "link" ? secret : `${secret}/nothing`, `${dir}/in/${name}`);
        await Deno.writeTextFile(go, "");
        const end = (await alice.untilTerminal(acc.job_id!, 30_000)).at(-1)!;
        const text = JSON.stringify(end.payload);
        equal(end.payload.result?.code, "PERMISSION_DENIED", text);
        doesNotMatch(text, /arcp_secret_place_/, text);
        doesNotMatch(text, /s3cret/, text);
        // The next job's start scan must not meet this one.
        await Deno.remove(`${dir}/in/${name}`);
      }
    } finally {
      await alice.close();
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(secret, { recursive: true });
    }
  });

  await t.step("the start scan names an escaping link, not its target", async () => {
    const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_leak_" }));
    const secret = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_secret_place_" }));
    await Deno.symlink(secret, `${dir}/link`);
    try {
      const end = (await besideTicker(server, {
        agent: "fs-reader",
        input: { path: `${dir}/link/x`, go: `${dir}/link/x` },
        lease_request: { "fs.read": [`${dir}/**`] },
      })).at(-1)!;
      equal(end.payload.code, "PERMISSION_DENIED", JSON.stringify(end.payload));
      doesNotMatch(end.payload.message, /arcp_secret_place_/);
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(secret, { recursive: true });
    }
  });
});
