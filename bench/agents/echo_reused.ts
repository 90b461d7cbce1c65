/** `echo-reused@1.0.0`: echo whose worker serves successive jobs (`reuse`). */
import { defineAgent } from "../../src/agent.ts";

export default defineAgent({
  name: "echo-reused",
  version: "1.0.0",
  description: "Returns its input; one worker serves up to 10,000 jobs.",
  reuse: { maxJobs: 10_000, idleSec: 60 },
  run: (input: unknown) => ({ echo: input }),
});
