/**
 * `reader@1.0.0`: reads a file with plain `Deno.readFile`, so only the
 * worker's Deno permissions (derived from the lease) decide.
 */
import { defineAgent } from "../src/agent.ts";

export default defineAgent({
  name: "reader",
  version: "1.0.0",
  description: "Reads input.path; returns its size and SHA-256.",
  async run(input: { path: string }) {
    const bytes = await Deno.readFile(String(input?.path));
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    return { bytes: bytes.byteLength, sha256 };
  },
});
