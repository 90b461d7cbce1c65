/** `sleeper@1.0.0`: reports `sleeping`, waits `ms` (abortable), returns. */
import { defineAgent } from "../src/agent.ts";
import { sleep } from "./_sleep.ts";

export default defineAgent({
  name: "sleeper",
  version: "1.0.0",
  description: "Sleeps ms milliseconds; honours cancel.",
  async run(input: { ms: number }, ctx) {
    const ms = Math.max(0, Number(input?.ms ?? 0));
    await ctx.status("sleeping");
    await sleep(ms, ctx.signal);
    return { slept_ms: ms };
  },
});
