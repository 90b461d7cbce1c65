/**
 * The operator dashboard: `GET /` and the static files under `/ui/`, plain
 * HTML, CSS and ES modules with no build step and nothing fetched from
 * elsewhere. The page asks for a token, keeps it in `sessionStorage` and
 * reads the `/v1` management API with it; the static files themselves need
 * no authentication, as they hold nothing but code.
 *
 * The files are imported as text (`with { type: "text" }`), so they are part
 * of the module graph: they travel with the package whether it runs from a
 * checkout, from a URL or a registry (where `import.meta.url` is `https:`
 * and `Deno.readFile` could not reach them), or from a `deno compile`
 * binary (which embeds the graph, so no `--include` is needed).
 *
 * Every response carries a Content-Security-Policy that allows scripts,
 * styles and connections to this origin only and no inline script or
 * style, so a job's output rendered into the page can never run.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { etag } from "hono/etag";
import indexHtml from "./ui/index.html" with { type: "text" };
import styleCss from "./ui/style.css" with { type: "text" };
import iconSvg from "./ui/icon.svg" with { type: "text" };
import appJs from "./ui/app.js" with { type: "text" };
import apiJs from "./ui/api.js" with { type: "text" };
import domJs from "./ui/dom.js" with { type: "text" };
import formatJs from "./ui/format.js" with { type: "text" };
import jobsJs from "./ui/jobs.js" with { type: "text" };
import jobJs from "./ui/job.js" with { type: "text" };
import sessionsJs from "./ui/sessions.js" with { type: "text" };
import runtimeJs from "./ui/runtime.js" with { type: "text" };

/** The dashboard's Content-Security-Policy: this origin only, nothing inline. */
export const DASHBOARD_CSP: string = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const JS = "text/javascript; charset=utf-8";

/** The files under `/ui/`, by name, with their content types. */
const FILES: ReadonlyMap<string, { body: string; type: string }> = new Map([
  ["style.css", { body: styleCss, type: "text/css; charset=utf-8" }],
  ["icon.svg", { body: iconSvg, type: "image/svg+xml" }],
  ["app.js", { body: appJs, type: JS }],
  ["api.js", { body: apiJs, type: JS }],
  ["dom.js", { body: domJs, type: JS }],
  ["format.js", { body: formatJs, type: JS }],
  ["jobs.js", { body: jobsJs, type: JS }],
  ["job.js", { body: jobJs, type: JS }],
  ["sessions.js", { body: sessionsJs, type: JS }],
  ["runtime.js", { body: runtimeJs, type: JS }],
]);

/**
 * The dashboard's routes, to mount at the root of the runtime's app: `GET /`
 * (the page) and `GET /ui/:file` (its scripts, styles and icon). Files are
 * revalidated by ETag, so a new runtime version is picked up on reload.
 *
 * @returns a hono app answering those two routes
 * @example
 * ```ts ignore
 * const app = new Hono();
 * app.route("/", dashboardRoutes());
 * ```
 */
export function dashboardRoutes(): Hono {
  const app = new Hono();
  // Per route, not `use("*")`: mounted at the root, a wildcard would reach
  // the API and the WebSocket upgrade too.
  const headers: MiddlewareHandler = async (c, next) => {
    await next();
    c.header("content-security-policy", DASHBOARD_CSP);
    c.header("x-content-type-options", "nosniff");
    c.header("referrer-policy", "no-referrer");
    c.header("cache-control", "no-cache");
  };
  app.get("/", headers, etag(), (c) => c.html(indexHtml));
  app.get("/ui/:file", headers, etag(), (c) => {
    const file = FILES.get(c.req.param("file"));
    if (!file) return c.text("not found", 404);
    return c.body(file.body, 200, { "content-type": file.type });
  });
  return app;
}
