/**
 * Serves the package the way JSR does: exactly the files `deno publish
 * --dry-run` lists, with the bare specifiers of deno.json's import map
 * rewritten to what they map to (JSR "unfurls" them at publish time, so a
 * user needs no import map for the package's own dependencies).
 *
 * @module
 */
import { serveLoopback } from "../../testing/loopback.ts";
import { ROOT } from "../../testing/server.ts";
import config from "../../deno.json" with { type: "json" };

/** The package on a loopback HTTP server. */
export interface PackageServer {
  /** `http://127.0.0.1:PORT`, the package root. */
  url: string;
  /** Paths served, relative to the root (`mod.ts`, `src/agent.ts`, …). */
  files: string[];
  /** Stops the server. */
  close(): Promise<void>;
}

/**
 * The files `deno publish --dry-run` would upload.
 *
 * @returns paths relative to the project root
 */
export async function publishedFiles(): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`deno publish --dry-run failed:\n${text}`);
  const prefix = `file://${ROOT}/`;
  return [...text.matchAll(/^\s+(file:\/\/\S+) \(/gm)]
    .map((m) => decodeURIComponent(m[1]))
    .filter((u) => u.startsWith(prefix))
    .map((u) => u.slice(prefix.length));
}

/**
 * Rewrites the package's bare specifiers as `deno publish` does.
 *
 * @param source a module's text
 * @returns the text with import-map specifiers replaced by their targets
 */
export function unfurl(source: string): string {
  const map = config.imports as Record<string, string>;
  return source.replace(
    /(\bfrom\s*|\bimport\s*\(?\s*)"([^"./][^"]*)"/g,
    (whole, lead: string, specifier: string) => {
      if (specifier in map) return `${lead}"${map[specifier]}"`;
      const key = Object.keys(map).find((k) => specifier.startsWith(`${k}/`));
      return key ? `${lead}"${map[key]}${specifier.slice(key.length)}"` : whole;
    },
  );
}

/**
 * Starts serving the published files on a free loopback port.
 *
 * @returns the server
 */
export async function servePackage(): Promise<PackageServer> {
  const files = await publishedFiles();
  const served = new Set(files);
  const server = serveLoopback(async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname).slice(1);
    if (!served.has(path)) return new Response("not published", { status: 404 });
    const text = await Deno.readTextFile(`${ROOT}/${path}`);
    const isModule = /\.(ts|js|mjs|mts)$/.test(path);
    return new Response(isModule ? unfurl(text) : text, {
      headers: { "content-type": isModule ? "application/typescript" : "text/plain" },
    });
  });
  return { url: `http://127.0.0.1:${server.port}`, files, close: server.close };
}
