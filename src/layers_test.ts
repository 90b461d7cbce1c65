import { deepEqual } from "assert";

/**
 * Which part of `src/` may import which: the table ARCHITECTURE.md explains.
 * A part is a top-level folder or file of `src/`, and the sandbox's
 * `worker/` and `host/` sides are parts of their own. Data flows down this
 * table; nothing imports upwards.
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  "agent.ts": [],
  "iso_time.ts": [],
  "logger.ts": ["iso_time.ts"],
  "metrics.ts": [],
  "turn_slice.ts": [],
  "dashboard": [],
  "protocol": ["iso_time.ts"],
  "lease": ["protocol"],
  "store": ["protocol", "turn_slice.ts"],
  "transport": ["protocol", "logger.ts"],
  "credentials": ["protocol", "store", "logger.ts"],
  "sandbox/worker": ["agent.ts"],
  "sandbox/host": ["sandbox", "sandbox/worker"],
  "sandbox": ["protocol", "turn_slice.ts", "lease", "sandbox/worker", "sandbox/host", "logger.ts"],
  "jobs": [
    "protocol",
    "turn_slice.ts",
    "lease",
    "store",
    "credentials",
    "sandbox",
    "logger.ts",
    "metrics.ts",
  ],
  "session": [
    "protocol",
    "turn_slice.ts",
    "jobs",
    "sandbox",
    "store",
    "transport",
    "logger.ts",
    "metrics.ts",
  ],
  "api": ["protocol", "jobs", "session", "store"],
  "http.ts": ["protocol", "session", "transport", "dashboard", "logger.ts", "metrics.ts"],
  "runtime.ts": [
    "protocol",
    "store",
    "credentials",
    "sandbox",
    "jobs",
    "session",
    "api",
    "transport",
    "http.ts",
    "logger.ts",
    "metrics.ts",
  ],
  "client": ["protocol"],
  "cli": ["protocol", "client", "credentials", "runtime.ts", "logger.ts"],
};

const SRC = new URL("./", import.meta.url);
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)["'](\.{1,2}\/[^"']+)["']/g;

function partOf(path: string): string {
  const [top, sub, ...rest] = path.split("/");
  if (top === "sandbox" && rest.length > 0 && (sub === "worker" || sub === "host")) {
    return `sandbox/${sub}`;
  }
  return top;
}

async function* sourceFiles(dir: URL, prefix = ""): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = prefix + entry.name;
    if (entry.isDirectory) yield* sourceFiles(new URL(`${entry.name}/`, dir), `${path}/`);
    else if (path.endsWith(".ts") && !path.endsWith("_test.ts")) yield path;
  }
}

Deno.test("each part of src/ imports only the parts below it", async () => {
  const wrong: string[] = [];
  for await (const path of sourceFiles(SRC)) {
    const from = partOf(path);
    const allowed = MAY_IMPORT[from];
    if (!allowed) {
      wrong.push(`${path}: ${from} has no row in the layer table`);
      continue;
    }
    const text = await Deno.readTextFile(new URL(path, SRC));
    for (const [, spec] of text.matchAll(IMPORT)) {
      const target = new URL(spec, new URL(path, SRC)).href.slice(SRC.href.length);
      const to = partOf(target);
      if (to !== from && !allowed.includes(to)) wrong.push(`${path} imports ${target}`);
    }
  }
  deepEqual(wrong, []);
});
