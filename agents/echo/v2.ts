/** `echo@2.0.0`: returns its input with the version that ran; the default echo. */
import { defineAgent } from "../../src/agent.ts";

export default defineAgent({
  name: "echo",
  version: "2.0.0",
  description: "Returns its input (current version).",
  run: (input: unknown) => ({ echo: input, version: "2.0.0" }),
});
