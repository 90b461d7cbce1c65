import { deepEqual, equal } from "assert";
import { webStorageScope } from "./web_storage.ts";

/** Runs a script in a deno process with its own DENO_DIR and the scope's origin; returns its stdout. */
async function runIn(denoDir: string, flag: string, code: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", flag, `data:application/javascript,${encodeURIComponent(code)}`],
    env: { DENO_DIR: denoDir, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

const WRITE_AND_READ = `
const cache = await caches.open("c");
const before = await cache.match("http://x/k");
await cache.put("http://x/k", new Response("secret"));
const stored = localStorage.getItem("k");
localStorage.setItem("k", "secret");
console.log(JSON.stringify([before ? await before.text() : null, stored]));`;

Deno.test("each sandbox process's web storage is its own, and is gone once removed", async () => {
  const denoDir = await Deno.makeTempDir({ prefix: "arcp_webstorage_" });
  try {
    const first = webStorageScope(denoDir);
    equal(await runIn(denoDir, first.flag, WRITE_AND_READ), JSON.stringify([null, null]));
    // The same origin would see it: the storage really is on disk.
    equal(await runIn(denoDir, first.flag, WRITE_AND_READ), JSON.stringify(["secret", "secret"]));
    const second = webStorageScope(denoDir);
    equal(await runIn(denoDir, second.flag, WRITE_AND_READ), JSON.stringify([null, null]));
    await first.remove();
    await second.remove();
    const left: string[] = [];
    for await (const e of Deno.readDir(`${denoDir}/location_data/web_cache`)) left.push(e.name);
    for await (const e of Deno.readDir(`${denoDir}/location_data`)) {
      if (e.name !== "web_cache") left.push(e.name);
    }
    deepEqual(left, []);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});
