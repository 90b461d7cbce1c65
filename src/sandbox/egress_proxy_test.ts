import { equal } from "assert";
import { EgressProxy } from "./egress_proxy.ts";
import { EGRESS_HEADERS } from "./worker/egress_fetch.ts";

function upstream(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      new Response(`saw ${new URL(req.url).pathname} ${req.headers.get("x-arcp-egress-token")}`),
  );
}

async function ask(proxy: EgressProxy, target: string, headers: Record<string, string> = {}) {
  const res = await fetch(proxy.config.url, {
    headers: { [EGRESS_HEADERS.target]: target, ...headers },
  });
  const refused = res.headers.get(EGRESS_HEADERS.refused);
  const text = await res.text();
  return { status: res.status, refused: refused && decodeURIComponent(refused), text };
}

Deno.test("the egress proxy serves only its job's token, never itself, and strips its headers", async () => {
  await using up = upstream();
  const base = `http://127.0.0.1:${up.addr.port}`;
  const proxy = new EgressProxy([`${base}/**`, "http://127.0.0.1:*/**"]);
  try {
    const token = { [EGRESS_HEADERS.token]: proxy.config.token };
    equal((await ask(proxy, `${base}/x`)).status, 407, "no token");
    equal((await ask(proxy, `${base}/x`, { [EGRESS_HEADERS.token]: "guess" })).status, 407);
    const ok = await ask(proxy, `${base}/x`, token);
    equal(ok.text, "saw /x null", "the token never leaves the proxy");
    const self = await ask(proxy, `${proxy.config.url}x`, token);
    equal(self.refused, "the egress proxy does not fetch from itself");
    const upgrade = await ask(proxy, `${base}/ws`, { ...token, upgrade: "websocket" });
    equal(upgrade.status, 403);
    const userinfo = await ask(proxy, `http://u:p@127.0.0.1:${up.addr.port}/`, token);
    equal(userinfo.refused, "URLs with userinfo are refused");
  } finally {
    await proxy.close();
  }
});
