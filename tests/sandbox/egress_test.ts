/**
 * Egress: a `net.fetch` lease gives a job fetches through its egress proxy,
 * never a socket of its own. Hostile agents run in real sandbox processes
 * beside an honest ticker of another principal, which must finish
 * correctly, while `/healthz` keeps answering.
 */
import { deepEqual, equal, match, ok } from "assert";
import { ROOT, startServer, type TestServer } from "../../testing/server.ts";
import { connect, type Env } from "../../testing/ws_client.ts";

const FIXTURES = `${ROOT}/tests/fixtures/egress`;

/** A loopback HTTP server that records every request it gets. */
function recordingServer(
  handler: (url: URL) => Response,
): { server: Deno.HttpServer<Deno.NetAddr>; port: number; hits: string[] } {
  const hits: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    hits.push(`${req.method} ${url.pathname}`);
    return handler(url);
  });
  return { server, port: server.addr.port, hits };
}

/** Runs one job of alice's beside bob's honest ticker and returns alice's terminal. */
async function run(
  server: TestServer,
  agent: string,
  input: unknown,
  lease: Record<string, string[]>,
): Promise<Env> {
  const bob = await connect(server.url, "bob-token");
  const alice = await connect(server.url, "alice-token");
  let worst = 0;
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const t0 = performance.now();
      const res = await fetch(`${server.http}/healthz`);
      await res.body?.cancel();
      equal(res.status, 200);
      worst = Math.max(worst, performance.now() - t0);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    const ticker = await bob.submit({ agent: "ticker", input: { count: 20, interval_ms: 20 } });
    equal(ticker.type, "job.accepted", JSON.stringify(ticker.payload));
    const acc = await alice.submit({ agent, input, lease_request: lease });
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    const terminal = (await alice.untilTerminal(acc.job_id!, 60_000)).at(-1)!;
    const bobEnd = (await bob.untilTerminal(ticker.job_id!, 60_000)).at(-1)!;
    equal(bobEnd.type, "job.result", `honest ticker: ${JSON.stringify(bobEnd.payload)}`);
    equal(bobEnd.payload.result.ticks, 20);
    return terminal;
  } finally {
    polling = false;
    await poll;
    await alice.close();
    await bob.close();
    ok(worst < 2000, `/healthz took ${worst.toFixed(0)} ms while ${agent} ran`);
  }
}

function resultOf(terminal: Env) {
  equal(terminal.type, "job.result", JSON.stringify(terminal.payload));
  return terminal.payload.result;
}

Deno.test("egress: a net.fetch lease lets a job fetch through its proxy and never listen", async (t) => {
  await using server = await startServer({ agentsDir: FIXTURES, hostHeapMb: 128 });
  const runtimePort = Number(new URL(server.http).port);
  const forbidden = recordingServer(() => new Response("secret"));
  const allowed = recordingServer((url) => {
    if (url.pathname === "/to-forbidden") {
      return Response.redirect(`http://127.0.0.1:${forbidden.port}/secret`, 302);
    }
    if (url.pathname === "/to-ok") return Response.redirect(`${base}/ok`, 302);
    return new Response(`hello ${url.pathname}`);
  });
  const base = `http://127.0.0.1:${allowed.port}`;
  const lease = { "net.fetch": [`${base}/**`] };
  const dir = await Deno.makeTempDir({ prefix: "arcp_egress_" });
  try {
    await t.step("no route to accept a connection: leased port, proxy port, any port", async () => {
      const dirLease = { ...lease, "fs.write": [`${dir}/**`], "fs.read": [`${dir}/**`] };
      const out = resultOf(await run(server, "listener", { port: allowed.port, dir }, dirLease));
      ok(Number.isInteger(out.proxy) && out.proxy !== allowed.port, JSON.stringify(out));
      for (const [how, got] of Object.entries(out)) {
        if (how !== "proxy") match(String(got), /^(NotCapable|AddrInUse)/, `${how}: ${got}`);
      }
      match(out["proxy:Deno.listen"], /AddrInUse/, "the proxy's port is already bound");
      match(out["leased:Deno.serve"], /NotCapable/);
      for (const node of ["node:net", "node:http", "node:dgram"]) {
        for (const target of ["leased", "proxy", "any"]) {
          const end = await run(
            server,
            "listener",
            { port: allowed.port, dir, node, target },
            lease,
          );
          const said = JSON.stringify(end.payload);
          if (node === "node:dgram" && target === "proxy") {
            // The one socket Deno lets it open: UDP on its own proxy's port, which only this job's
            // worker may send to (README "Security model", limits). Datagrams, not connections.
            match(said, /LISTENING/);
            continue;
          }
          // node:* servers report refusals as uncaught errors, which end the job.
          ok(!said.includes("LISTENING"), `${node} on ${target}: ${said}`);
          match(said, /NotCapable|AddrInUse|EADDRINUSE/, `${node} on ${target}: ${said}`);
        }
      }
      equal(await (await fetch(`${base}/still-me`)).text(), "hello /still-me");
    });

    await t.step("plain fetch and ctx.fetch of a leased URL go through the proxy", async () => {
      allowed.hits.length = 0;
      const out = resultOf(
        await run(server, "fetcher", {
          asks: [
            { url: `${base}/a?x=1` },
            { url: `${base}/b`, via: "ctx" },
            { url: `${base}/post`, method: "POST", body: "payload" },
            { url: `${base}/to-ok` },
            { url: `${base}/to-ok`, via: "ctx" },
            { url: `${base}/to-ok`, redirect: "manual" },
          ],
        }, lease),
      );
      deepEqual(out[0], {
        status: 200,
        text: "hello /a",
        url: `${base}/a?x=1`,
        redirected: false,
        location: null,
      });
      equal(out[1].text, "hello /b");
      equal(out[2].text, "hello /post");
      deepEqual([out[3].text, out[3].url, out[3].redirected], ["hello /ok", `${base}/ok`, true]);
      equal(out[4].text, "hello /ok");
      deepEqual([out[5].status, out[5].location], [302, `${base}/ok`]);
      deepEqual(allowed.hits.slice(0, 3), ["GET /a", "GET /b", "POST /post"]);
    });

    await t.step("a URL outside the lease is refused before anything leaves", async () => {
      forbidden.hits.length = 0;
      const out = resultOf(
        await run(server, "fetcher", {
          asks: [
            { url: `http://127.0.0.1:${forbidden.port}/secret` },
            { url: `http://127.0.0.1:${forbidden.port}/secret`, via: "ctx" },
            { url: `http://localhost:${allowed.port}/other-name` },
            { url: `http://127.0.0.1:${runtimePort}/healthz` },
          ],
        }, lease),
      );
      for (const o of out) {
        match(o.error, /NotCapable: net.fetch .* is not granted|does not grant net.fetch/, o.error);
      }
      deepEqual(forbidden.hits, []);
    });

    await t.step(
      "a redirect from a leased URL to one outside it is refused at the hop",
      async () => {
        forbidden.hits.length = 0;
        const out = resultOf(
          await run(server, "fetcher", {
            asks: [{ url: `${base}/to-forbidden` }, { url: `${base}/to-forbidden`, via: "ctx" }],
          }, lease),
        );
        match(out[0].error, /NotCapable: redirect from .*to-forbidden.*not granted/);
        match(out[1].error, /does not grant net.fetch/, out[1].error);
        deepEqual(forbidden.hits, []);
      },
    );

    await t.step(
      "raw TCP, WebSocket and node:http to the leased host:port are refused",
      async () => {
        allowed.hits.length = 0;
        const out = resultOf(
          await run(server, "raw", { host: "127.0.0.1", port: allowed.port }, lease),
        );
        for (const [how, got] of Object.entries(out)) {
          match(got as string, /NotCapable/, `${how}: ${got}`);
        }
        deepEqual(allowed.hits, []);
        const runtime = resultOf(
          await run(server, "raw", { host: "127.0.0.1", port: runtimePort }, lease),
        );
        match(runtime.connect, /NotCapable/);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
    await allowed.server.shutdown();
    await forbidden.server.shutdown();
  }
});
