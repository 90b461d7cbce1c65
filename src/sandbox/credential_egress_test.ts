import { deepEqual, equal, match } from "assert";
import { CredentialWatch, endpointGlobs } from "./credential_egress.ts";
import { EgressProxy } from "./egress_proxy.ts";
import { EGRESS_HEADERS } from "./worker/egress_fetch.ts";

const KEY = "sk-local-0123456789abcdef";

Deno.test("endpointGlobs: the canonical endpoint and everything under it", () => {
  deepEqual(endpointGlobs("HTTPS://Gateway.internal:443/v1/"), [
    "https://gateway.internal/v1",
    "https://gateway.internal/v1/**",
  ]);
  deepEqual(endpointGlobs("not a url"), []);
});

Deno.test("CredentialWatch refuses a value outside its endpoint in a header, the URL or the body, and forgets it at the job's end", () => {
  const watch = new CredentialWatch();
  watch.set(3, [{ id: "cred_a", value: KEY, endpoint: "http://127.0.0.1:4000/v1" }]);
  const none = new Headers();
  equal(
    watch.refusal(
      "http://127.0.0.1:4000/v1/chat/completions",
      new Headers({ authorization: `Bearer ${KEY}` }),
      undefined,
    ),
    undefined,
  );
  match(
    watch.refusal(
      "http://evil.test/x",
      new Headers({ authorization: `Bearer ${KEY}` }),
      undefined,
    )!,
    /^credential cred_a may be presented only to its endpoint, not to http:\/\/evil\.test\/x$/,
  );
  match(
    watch.refusal("http://evil.test/x", new Headers({ "x-api-key": KEY }), undefined)!,
    /cred_a/,
  );
  match(watch.refusal(`http://evil.test/x?k=${KEY}`, none, undefined)!, /cred_a/);
  const body = new TextEncoder().encode(JSON.stringify({ key: KEY })).buffer as ArrayBuffer;
  match(watch.refusal("http://evil.test/x", none, body)!, /cred_a/);
  // A sibling path of the endpoint is not the endpoint.
  match(
    watch.refusal("http://127.0.0.1:4000/v2", new Headers({ "x-api-key": KEY }), undefined)!,
    /cred_a/,
  );
  equal(
    watch.refusal("http://evil.test/x", new Headers({ authorization: "Bearer other" }), undefined),
    undefined,
  );
  watch.set(3, []);
  equal(
    watch.refusal("http://evil.test/x", new Headers({ "x-api-key": KEY }), undefined),
    undefined,
  );
});

Deno.test("the egress proxy refuses a redirect that would carry a credential off its endpoint", async () => {
  const seen: string[] = [];
  await using other = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    seen.push(req.url);
    return new Response("other");
  });
  await using gateway = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => Response.redirect(`http://127.0.0.1:${other.addr.port}/steal`, 307),
  );
  const endpoint = `http://127.0.0.1:${gateway.addr.port}/v1`;
  const proxy = new EgressProxy([
    ...endpointGlobs(endpoint),
    `http://127.0.0.1:${other.addr.port}/**`,
  ]);
  try {
    proxy.credentials.set(0, [{ id: "cred_r", value: KEY, endpoint }]);
    const res = await fetch(proxy.config.url, {
      method: "POST",
      headers: {
        [EGRESS_HEADERS.token]: proxy.config.token,
        [EGRESS_HEADERS.target]: `${endpoint}/chat/completions`,
        "x-api-key": KEY,
      },
      body: "{}",
    });
    await res.body?.cancel();
    equal(res.status, 403);
    match(
      decodeURIComponent(res.headers.get(EGRESS_HEADERS.refused)!),
      /^redirect: credential cred_r may be presented only to its endpoint/,
    );
    deepEqual(seen, []);
  } finally {
    await proxy.close();
  }
});
