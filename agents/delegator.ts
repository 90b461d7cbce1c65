/**
 * `delegator@1.0.0`: hands its input to another agent through `ctx.delegate`
 * with a narrower lease, and returns what the child returned.
 */
import { defineAgent, LeaseError } from "../src/agent.ts";

export default defineAgent({
  name: "delegator",
  version: "1.0.0",
  description:
    "Delegates input.input to input.agent under input.lease; returns the child's result.",
  async run(
    input: {
      agent: string;
      input?: unknown;
      lease?: Record<string, string[]>;
      expires_at?: string;
    },
    ctx,
  ) {
    await ctx.status("delegating", `to ${input.agent}`);
    try {
      const result = await ctx.delegate(input.agent, input.input ?? null, {
        lease: input.lease ?? {},
        ...(input.expires_at ? { leaseConstraints: { expires_at: input.expires_at } } : {}),
      });
      return { delegated_to: input.agent, result };
    } catch (err) {
      if (err instanceof LeaseError) {
        return { delegated_to: input.agent, refused: err.code, message: err.message };
      }
      throw err;
    }
  },
});
