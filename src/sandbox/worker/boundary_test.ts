import { deepEqual } from "assert";

/**
 * What runs inside an agent's isolate is loaded into every worker, with the
 * agent's lease as its only permissions: it must not pull in runtime code
 * (sessions, KV, the host channel). Its module graph may hold this folder,
 * the agent API (which imports nothing) and zod, and nothing else.
 */
const WORKER_DIR = new URL("./", import.meta.url).href;
const AGENT_API = new URL("../../agent.ts", import.meta.url).href;
const ALLOWED_NPM = /^npm:\/zod@/;

async function moduleGraph(root: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", root],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`deno info ${root} failed`);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: Array<{ specifier: string }>;
  };
  return info.modules.map((m) => m.specifier);
}

Deno.test("worker-side modules import nothing outside sandbox/worker but the agent API and zod", async () => {
  for await (const entry of Deno.readDir(new URL(WORKER_DIR))) {
    if (!entry.name.endsWith(".ts") || entry.name.endsWith("_test.ts")) continue;
    const root = new URL(entry.name, WORKER_DIR).href;
    const outside = (await moduleGraph(root)).filter((spec) =>
      !spec.startsWith(WORKER_DIR) && spec !== AGENT_API && !ALLOWED_NPM.test(spec)
    );
    deepEqual(outside, [], `${entry.name} reaches outside the worker side`);
  }
});

Deno.test("the agent API imports nothing, so every worker can load it", async () => {
  deepEqual(await moduleGraph(AGENT_API), [AGENT_API]);
});
