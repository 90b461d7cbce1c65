import { equal, ok } from "assert";
import { findDenoDir, runtimeProtectedPaths } from "./protected_paths.ts";

Deno.test("findDenoDir finds the folder `deno info` reports", async () => {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  equal(findDenoDir(), JSON.parse(new TextDecoder().decode(out.stdout)).denoDir);
});

Deno.test("findDenoDir follows DENO_DIR, then XDG_CACHE_HOME, then HOME", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  equal(findDenoDir(env({ DENO_DIR: "/srv/deno", HOME: "/h" })), "/srv/deno");
  if (Deno.build.os !== "linux") return;
  equal(findDenoDir(env({ XDG_CACHE_HOME: "/c", HOME: "/h" })), "/c/deno");
  equal(findDenoDir(env({ HOME: "/h" })), "/h/.cache/deno");
});

Deno.test("secrets are denied read and write, code only write", async () => {
  const paths = await runtimeProtectedPaths({
    kvPath: "/srv/arcp/data/arcp.kv",
    agentsDir: "/srv/a",
  });
  const access = (p: string) => paths.find((x) => x.path === p)?.access;
  equal(access("/srv/arcp/data"), "read-write");
  equal(access("/proc"), "read-write");
  equal(access("/srv/a"), "write");
  equal(access(Deno.execPath()), "write");
  ok(paths.every((p) => p.reason.length > 0));
});
