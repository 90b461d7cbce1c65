/**
 * `spender@1.0.0`: calls the `search` tool once per step and reports what
 * each call cost, until its steps are done or its budget runs out.
 */
import { defineAgent, LeaseError } from "../src/agent.ts";

export default defineAgent({
  name: "spender",
  version: "1.0.0",
  description: "Spends input.cost (in input.currency) per search step until done or out of budget.",
  async run(input: { steps: number; cost: number; currency: string }, ctx) {
    const steps = Math.max(0, Math.floor(Number(input?.steps ?? 0)));
    let completed = 0;
    for (let i = 0; i < steps; i++) {
      try {
        await ctx.tool("search", { q: `step ${i + 1}` });
      } catch (err) {
        if (err instanceof LeaseError && err.code === "BUDGET_EXHAUSTED") {
          return { completed_steps: completed, stopped: "BUDGET_EXHAUSTED" };
        }
        throw err;
      }
      await ctx.metric("cost.search", Number(input.cost), String(input.currency));
      completed++;
    }
    return { completed_steps: completed };
  },
});
