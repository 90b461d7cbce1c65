/**
 * `echo-input@1.0.0`: answers every input a client sends to the running job
 * (vendor feature `x-arcp-deno.input`: `arcp send`, `arcp submit
 * --interactive`, `handle.send`) with a `log` event, until the client ends
 * the input; returns how many it answered.
 */
import { defineAgent } from "../src/agent.ts";

export default defineAgent({
  name: "echo-input",
  version: "1.0.0",
  description: "Answers each input sent to the running job until the input ends.",
  async run(input: { greeting?: string } | null, ctx) {
    await ctx.log("info", input?.greeting ?? "send me input; end it to finish");
    let answered = 0;
    for await (const content of ctx.inputs()) {
      const text = typeof content === "string" ? content : JSON.stringify(content);
      await ctx.log("info", `you said: ${text}`);
      answered++;
    }
    return { answered };
  },
});
