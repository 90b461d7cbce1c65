import { equal, ok } from "assert";
import type { ChannelHandlers, LaunchSpec } from "./channel.ts";
import { defaultLocalWarmMax, LocalLauncher } from "./local_launcher.ts";
import { permissionsForLease } from "./permissions.ts";

const ECHO = new URL("../../agents/echo/v1.ts", import.meta.url).href;

function spec(jobId: string, lease: Record<string, string[]> = {}): LaunchSpec {
  return {
    jobId,
    principal: "alice",
    agentUrl: ECHO,
    permissions: permissionsForLease(lease),
    egress: [],
  };
}

/** Handlers that keep a job's messages and settle on its result. */
function collect(): ChannelHandlers & { result: Promise<unknown> } {
  const { promise, resolve, reject } = Promise.withResolvers<unknown>();
  return {
    result: promise,
    message(msg) {
      const m = msg as { t: string; value?: unknown };
      if (m.t === "result") resolve(m.value);
    },
    crash: (reason) => reject(new Error(reason)),
  };
}

/** Waits until `cond` holds; fails after a bound no healthy run comes near. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("a burst of launches leaves warm workers of its key, no more than warmMax, and jobs of that key take them", async () => {
  const launcher = new LocalLauncher({ warmMax: 3 });
  try {
    const burst = Array.from({ length: 6 }, (_, i) => launcher.launch(spec(`job_${i}`), collect()));
    for (const channel of burst) channel.end("done");
    await until(() => launcher.warmCount === 3, "3 warm workers after a burst of 6");

    // A job of another key (another permission set) never takes them.
    const other = collect();
    const otherChannel = launcher.launch(spec("job_other", { "fs.read": ["/tmp/**"] }), other);
    equal(launcher.warmCount, 3);

    const h = collect();
    const channel = launcher.launch(spec("job_next"), h);
    equal(launcher.warmCount, 2);
    channel.post(
      {
        t: "start",
        jobId: "job_next",
        traceId: "0".repeat(32),
        input: { n: 1 },
        lease: {},
        beatMs: 1000,
      } as Parameters<typeof channel.post>[0],
    );
    equal(JSON.stringify(await h.result), JSON.stringify({ echo: { n: 1 }, version: "1.0.0" }));
    channel.end("done");
    otherChannel.end("done");
    // Idle again: the pool stays within its budget.
    await until(() => launcher.warmCount >= 3, "the pool refilled");
    ok(launcher.warmCount <= 3, `${launcher.warmCount} warm workers past warmMax 3`);
  } finally {
    await launcher.close();
  }
  equal(launcher.warmCount, 0);
});

Deno.test("warm workers beyond one are stopped once their burst is old", async () => {
  const launcher = new LocalLauncher({ warmMax: 2 });
  try {
    for (let i = 0; i < 6; i++) launcher.launch(spec(`job_${i}`), collect()).end("done");
    await until(() => launcher.warmCount === 2, "2 warm workers after a burst of 6");
    await until(() => launcher.warmCount === 1, "trimmed to one once the burst is old");
  } finally {
    await launcher.close();
  }
});

Deno.test("warmPool 0 starts every worker on demand", async () => {
  const launcher = new LocalLauncher({ warmPool: 0 });
  try {
    for (let i = 0; i < 3; i++) launcher.launch(spec(`job_${i}`), collect()).end("done");
    // A refill, were there one, runs in the next turn.
    await new Promise((r) => setTimeout(r, 50));
    equal(launcher.warmCount, 0);
  } finally {
    await launcher.close();
  }
});

Deno.test("the default budget of warm workers follows the machine's memory, within 8 – 64", () => {
  equal(defaultLocalWarmMax(1024 ** 3), 8);
  equal(defaultLocalWarmMax(8 * 1024 ** 3), 32);
  equal(defaultLocalWarmMax(24 * 1024 ** 3), 64);
});
