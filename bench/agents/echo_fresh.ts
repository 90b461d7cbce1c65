/** `echo-fresh@1.0.0`: echo with the default isolation, a fresh worker per job. */
import { defineAgent } from "../../src/agent.ts";

export default defineAgent({
  name: "echo-fresh",
  version: "1.0.0",
  description: "Returns its input; a fresh worker per job.",
  run: (input: unknown) => ({ echo: input }),
});
