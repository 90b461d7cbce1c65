/** `failer@1.0.0`: throws `Error(input.message)`. */
import { defineAgent } from "../src/agent.ts";

export default defineAgent({
  name: "failer",
  version: "1.0.0",
  description: "Always fails with input.message.",
  run(input: { message?: string }) {
    throw new Error(String(input?.message ?? "failer failed"));
  },
});
