/**
 * `chat@1.0.0`: the template for agents that call a model. It takes
 * `{messages, model}`, asks the job's provisioned credential's gateway (any
 * OpenAI-compatible endpoint: LiteLLM, a vendor) through `ctx.model()`,
 * streams the answer into the job's result as it arrives, and reports what
 * the call used. The runtime checks `model.use` and the budget before the
 * request, emits the `tool_call`/`tool_result` pair, and charges the cost.
 */
import { type ChatMessage, defineAgent } from "../../src/agent.ts";

export default defineAgent({
  name: "chat",
  version: "1.0.0",
  description: "Streams a model's answer to input.messages (OpenAI-compatible) as the result.",
  concurrency: 16, // model calls are I/O: many jobs may share one worker
  async run(input: { messages: ChatMessage[]; model: string }, ctx) {
    const out = ctx.streamResult().getWriter();
    const answer = await ctx.model().chat(
      { model: input.model, messages: input.messages },
      { onDelta: (text) => out.write(text) }, // `thoughts: true` also emits each piece as a thought
    );
    await out.close();
    const used = answer.usage?.total_tokens ?? 0;
    await ctx.log("info", `${answer.model} answered (${answer.finishReason}, ${used} tokens)`);
  },
});
