import { deepEqual, equal, ok } from "assert";
import type { AgentChannel, ChannelHandlers, LaunchSpec } from "./channel.ts";
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

const WARMED = new URL("../../tests/fixtures/sharing/warmed.ts", import.meta.url).href;

/** The `start` message of a job with no input. */
function startOf(jobId: string): Parameters<AgentChannel["post"]>[0] {
  return {
    t: "start",
    jobId,
    traceId: "0".repeat(32),
    input: {},
    lease: {},
    beatMs: 1000,
  } as Parameters<AgentChannel["post"]>[0];
}

/** Starts a `warmed` job on its channel; its result says how many jobs its worker's module ran. */
async function runWarmed(launcher: LocalLauncher, jobId: string): Promise<{ runs: number }> {
  const h = collect();
  const channel = launcher.launch({ ...spec(jobId), agentUrl: WARMED }, h);
  channel.post(startOf(jobId));
  try {
    return await h.result as { runs: number };
  } finally {
    channel.end("done");
  }
}

Deno.test("a burst is every launch until the launcher is idle again: the pool then readies that many, within warmMax, and the next burst's jobs each take one no job used", async () => {
  const launcher = new LocalLauncher({ warmMax: 3 });
  try {
    // Four launches over 3.3 s, each after the burst span, all in flight until the last.
    const spread = [];
    for (let i = 0; i < 4; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 1_100));
      spread.push(launcher.launch({ ...spec(`job_${i}`), agentUrl: WARMED }, collect()));
    }
    // While they are in flight, the pool does not grow.
    equal(launcher.warmCount, 0);
    for (const channel of spread) channel.end("done");
    await until(() => launcher.warmCount === 3, "3 warm workers after a spread-out burst of 4");

    const next = [0, 1, 2].map((i) => runWarmed(launcher, `next_${i}`));
    // Each took one of the pool's, and each of those had run no job.
    equal(launcher.warmCount, 0);
    deepEqual((await Promise.all(next)).map((r) => r.runs), [1, 1, 1]);

    // Refilled once idle, then back to one once the burst is old.
    await until(() => launcher.warmCount === 3, "the pool refilled");
    await until(() => launcher.warmCount === 1, "trimmed to one once the burst is old");
  } finally {
    await launcher.close();
  }
});

Deno.test("a job that takes a pool worker not yet created gets it created while other jobs run", async () => {
  const launcher = new LocalLauncher({ warmMax: 4 });
  try {
    for (let i = 0; i < 4; i++) {
      launcher.launch({ ...spec(`job_${i}`), agentUrl: WARMED }, collect()).end("done");
    }
    // The refill has queued the pool's 4 workers; none is created yet.
    await new Promise((r) => setTimeout(r, 0));
    equal(launcher.warmCount, 4);
    const first = collect();
    const a = launcher.launch({ ...spec("job_a"), agentUrl: WARMED }, first);
    a.post(startOf("job_a"));
    equal((await first.result as { runs: number }).runs, 1);
    // With job_a still in flight, the pool's other workers wait for an idle moment; one a
    // job takes is created for it at once.
    const second = collect();
    const b = launcher.launch({ ...spec("job_b"), agentUrl: WARMED }, second);
    b.post(startOf("job_b"));
    equal((await second.result as { runs: number }).runs, 1);
    a.end("done");
    b.end("done");
  } finally {
    await launcher.close();
  }
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
