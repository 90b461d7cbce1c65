/** `echo@1.0.0`: returns its input with the version that ran. */
import { defineAgent } from "../../src/agent.ts";

export default defineAgent({
  name: "echo",
  version: "1.0.0",
  description: "Returns its input.",
  run: (input: unknown) => ({ echo: input, version: "1.0.0" }),
});
