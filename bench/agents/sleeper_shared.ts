/** `sleeper-shared@1.0.0`: sleeper whose worker runs up to 1,000 jobs at once (`concurrency`). */
import { defineAgent } from "../../src/agent.ts";

export default defineAgent({
  name: "sleeper-shared",
  version: "1.0.0",
  description: "Sleeps ms milliseconds; honours cancel; 1,000 jobs per worker.",
  concurrency: 1000,
  async run(input: { ms: number }, ctx) {
    const ms = Math.max(0, Number(input?.ms ?? 0));
    await ctx.status("sleeping");
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      });
    });
    return { slept_ms: ms };
  },
});
