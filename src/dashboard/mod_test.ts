import { equal, ok } from "assert";
import { Hono } from "hono";
import { DASHBOARD_CSP, dashboardRoutes } from "./mod.ts";

const app = new Hono();
app.route("/", dashboardRoutes());
app.get("/v1/whoami", (c) => c.json({ principal: "x" }));

Deno.test("the page and every file it names are served under the CSP", async () => {
  const page = await app.request("/");
  equal(page.status, 200);
  equal(page.headers.get("content-security-policy"), DASHBOARD_CSP);
  equal(page.headers.get("x-content-type-options"), "nosniff");
  const html = await page.text();
  ok(!/<script(?![^>]*\bsrc=)[^>]*>/.test(html), "no inline script");
  ok(!/\sstyle=/.test(html), "no inline style");
  const named = [...html.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1]);
  const modules = ["/ui/app.js"];
  for (const path of [...named, ...modules]) {
    const res = await app.request(path);
    equal(res.status, 200, path);
    equal(res.headers.get("content-security-policy"), DASHBOARD_CSP, path);
    const body = await res.text();
    // Every module a served script imports is served too.
    for (const [, rel] of body.matchAll(/from "\.\/([a-z_]+\.js)"/g)) {
      if (!modules.includes(`/ui/${rel}`)) modules.push(`/ui/${rel}`);
    }
  }
  ok(modules.length >= 6, `modules: ${modules.join(", ")}`);
});

Deno.test("scripts are served as JavaScript, an unknown file is 404", async () => {
  equal(
    (await app.request("/ui/app.js")).headers.get("content-type"),
    "text/javascript; charset=utf-8",
  );
  equal(
    (await app.request("/ui/style.css")).headers.get("content-type"),
    "text/css; charset=utf-8",
  );
  equal((await app.request("/ui/nope.js")).status, 404);
  equal((await app.request("/ui/../mod.ts")).status, 404);
});

Deno.test("a revalidation with the ETag gets 304", async () => {
  const first = await app.request("/ui/app.js");
  const tag = first.headers.get("etag");
  ok(tag);
  equal((await app.request("/ui/app.js", { headers: { "if-none-match": tag } })).status, 304);
});

Deno.test("the dashboard's headers stay off the routes beside it", async () => {
  const res = await app.request("/v1/whoami");
  equal(res.status, 200);
  equal(res.headers.get("content-security-policy"), null);
});
