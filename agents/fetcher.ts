/** `fetcher@1.0.0`: plain `fetch(url)`; the worker's net permission decides. */
import { defineAgent } from "../src/agent.ts";

export default defineAgent({
  name: "fetcher",
  version: "1.0.0",
  description: "Fetches input.url; returns the status and body size.",
  async run(input: { url: string }, ctx) {
    const res = await fetch(String(input?.url), { signal: ctx.signal });
    const body = new Uint8Array(await res.arrayBuffer());
    return { status: res.status, bytes: body.byteLength };
  },
});
