/** `ticker@1.0.0`: emits `count` progress events, `interval_ms` apart. */
import { defineAgent } from "../src/agent.ts";
import { sleep } from "./_sleep.ts";

export default defineAgent({
  name: "ticker",
  version: "1.0.0",
  description: "Emits count progress ticks, interval_ms apart; honours cancel.",
  async run(input: { count: number; interval_ms?: number }, ctx) {
    const count = Math.max(0, Math.floor(Number(input?.count ?? 0)));
    const interval = Math.max(0, Number(input?.interval_ms ?? 0));
    for (let i = 1; i <= count; i++) {
      if (interval > 0) await sleep(interval, ctx.signal);
      ctx.signal.throwIfAborted();
      await ctx.progress({ current: i, total: count, units: "ticks" });
    }
    return { ticks: count };
  },
});
