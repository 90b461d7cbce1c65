import { equal } from "assert";
import { EVENT_BODIES } from "../protocol/events.ts";
import type { AgentLauncher, ChannelHandlers } from "./channel.ts";
import type { SandboxListener } from "./sandbox.ts";
import {
  isBeatMessage,
  isEventMessage,
  isEventsMessage,
  isResultMessage,
  plainBody,
  SupervisedSandbox,
} from "./supervisor.ts";
import { EVENT_WINDOW } from "./worker/limits.ts";
import { WorkerMessageSchema } from "./worker/wire.ts";

Deno.test("isEventMessage accepts exactly the events the strict wire schema accepts", () => {
  const samples: unknown[] = [
    { t: "event", j: 0, kind: "log", body: { level: "info", message: "hi" } },
    { t: "event", j: 3, kind: "x-vendor.a", body: {} },
    { t: "event", j: 0, kind: "log", body: Object.create(null) },
    { t: "event", j: -1, kind: "log", body: {} },
    { t: "event", j: 1.5, kind: "log", body: {} },
    { t: "event", j: "0", kind: "log", body: {} },
    { t: "event", j: 0, kind: "", body: {} },
    { t: "event", j: 0, kind: "k".repeat(201), body: {} },
    { t: "event", j: 0, kind: "k".repeat(200), body: {} },
    { t: "event", j: 0, kind: "log", body: [] },
    { t: "event", j: 0, kind: "log", body: null },
    { t: "event", j: 0, kind: "log", body: "text" },
    { t: "event", j: 0, kind: "log", body: {}, job_id: "job_x" },
    { t: "event", kind: "log", body: {} },
    { t: "result", j: 0, value: 1 },
    null,
    [],
    "event",
  ];
  for (const raw of samples) {
    const strict = WorkerMessageSchema.safeParse(raw);
    const wellFormed = strict.success && strict.data.t === "event";
    equal(isEventMessage(raw), wellFormed, JSON.stringify(raw));
  }
});

Deno.test("isBeatMessage accepts exactly the beats the strict wire schema accepts", () => {
  const samples: unknown[] = [
    { t: "beat" },
    { t: "beat", j: 0 },
    { t: "Beat" },
    { t: ["beat"] },
    Object.assign(Object.create(null), { t: "beat" }),
    { t: "event", j: 0, kind: "log", body: {} },
    {},
    null,
    [],
    "beat",
  ];
  for (const raw of samples) {
    const strict = WorkerMessageSchema.safeParse(raw);
    const wellFormed = strict.success && strict.data.t === "beat";
    equal(isBeatMessage(raw), wellFormed, JSON.stringify(raw));
  }
});

Deno.test("isResultMessage accepts exactly the results the strict wire schema accepts", () => {
  const samples: unknown[] = [
    { t: "result", j: 0, value: { echo: 1 } },
    { t: "result", j: 4, value: null },
    { t: "result", j: 0, value: undefined },
    { j: 0, value: [1], t: "result" },
    Object.assign(Object.create(null), { t: "result", j: 0, value: 1 }),
    { t: "result", j: 0 },
    { t: "result", value: 1 },
    { t: "result", j: -1, value: 1 },
    { t: "result", j: 0.5, value: 1 },
    { t: "result", j: "0", value: 1 },
    { t: "result", j: 0, value: 1, job_id: "job_x" },
    { t: "Result", j: 0, value: 1 },
    { t: "error", j: 0, name: "Error", message: "x" },
    { t: "beat" },
    null,
    [],
    "result",
  ];
  for (const raw of samples) {
    const strict = WorkerMessageSchema.safeParse(raw);
    const wellFormed = strict.success && strict.data.t === "result";
    equal(isResultMessage(raw), wellFormed, JSON.stringify(raw));
  }
});

Deno.test("isEventsMessage accepts exactly the batches the strict wire schema accepts", () => {
  const item = ["log", { level: "info", message: "hi" }];
  const samples: unknown[] = [
    { t: "events", j: 0, items: [item] },
    { t: "events", j: 2, items: [item, ["x-vendor.a", {}], ["log", Object.create(null)]] },
    { t: "events", j: 0, items: [] },
    { t: "events", j: 0, items: Array.from({ length: EVENT_WINDOW }, () => item) },
    { t: "events", j: 0, items: Array.from({ length: EVENT_WINDOW + 1 }, () => item) },
    { t: "events", j: -1, items: [item] },
    { t: "events", j: 0.5, items: [item] },
    { t: "events", j: 0, items: [["log"]] },
    { t: "events", j: 0, items: [["log", {}, 1]] },
    { t: "events", j: 0, items: [["", {}]] },
    { t: "events", j: 0, items: [["k".repeat(201), {}]] },
    { t: "events", j: 0, items: [["log", []]] },
    { t: "events", j: 0, items: [["log", null]] },
    { t: "events", j: 0, items: [[1, {}]] },
    { t: "events", j: 0, items: [{ kind: "log", body: {} }] },
    { t: "events", j: 0, items: item },
    { t: "events", j: 0, items: [item], job_id: "job_x" },
    { t: "events", items: [item] },
    { t: "event", j: 0, kind: "log", body: {} },
    null,
  ];
  for (const raw of samples) {
    const strict = WorkerMessageSchema.safeParse(raw);
    const wellFormed = strict.success && strict.data.t === "events";
    equal(isEventsMessage(raw), wellFormed, JSON.stringify(raw)?.slice(0, 200));
  }
});

Deno.test("plainBody accepts only bodies their event schema accepts", () => {
  const samples: Array<[string, Record<string, unknown>]> = [
    ["progress", { current: 1, total: 2, units: "ticks" }],
    ["progress", { current: 0 }],
    ["progress", { current: 3, total: 2 }],
    ["progress", { current: -1 }],
    ["progress", { current: Infinity }],
    ["progress", { current: NaN }],
    ["progress", { current: "1" }],
    ["progress", { current: 1, total: undefined, message: "m", extra: true }],
    ["progress", { current: 1, units: 5 }],
    ["progress", { current: 1, total: -1 }],
    ["progress", {}],
    ["log", { level: "info", message: "hi" }],
    ["log", { level: "loud", message: "hi" }],
    ["log", { level: "info", message: 1 }],
    ["log", { level: "info", message: "hi", attributes: { a: 1 } }],
    ["thought", { text: "t" }],
    ["thought", { text: 1 }],
    ["status", { phase: "running" }],
    ["status", { phase: "" }],
    ["status", { phase: "p", message: 1 }],
    ["status", { phase: "p", message: "m", more: 1 }],
    ["metric", { name: "n", value: 1 }],
  ];
  for (const [kind, body] of samples) {
    const schema = EVENT_BODIES[kind as keyof typeof EVENT_BODIES];
    // Accepted by hand implies accepted by the schema; the rest is the schema's to judge.
    if (plainBody(kind, body)) equal(schema.safeParse(body).success, true, JSON.stringify(body));
  }
  equal(plainBody("progress", { current: 1, total: 2 }), true);
  equal(plainBody("log", { level: "warn", message: "" }), true);
});

Deno.test("a job is warm exactly when its launcher hands it a worker already alive", async () => {
  for (const ready of [true, false]) {
    const posted: unknown[] = [];
    let handlers: ChannelHandlers | undefined;
    const launcher: AgentLauncher = {
      launch(_spec, h) {
        handlers = h;
        // A ready worker is announced alive as the job is attached to it.
        if (ready) h.alive?.(Date.now());
        return { post: (msg) => posted.push(msg), end: () => {} };
      },
      close: () => Promise.resolve(),
    };
    const sandbox = new SupervisedSandbox(launcher);
    const listener: SandboxListener = {
      onEvents: () => Promise.resolve(),
      onCall: () => Promise.resolve(null),
      onChunk: () => Promise.resolve(),
      onChunkEnd: () => {},
      onResult: () => {},
      onError: () => {},
    };
    const run = await sandbox.start({
      jobId: "job_warm",
      principal: "p",
      traceId: "0123456789abcdef0123456789abcdef",
      agentUrl: "file:///agent.ts",
      input: null,
      lease: {},
    }, listener);
    equal(run.warm, ready);
    // A worker that becomes ready later does not make the job warm after the fact.
    handlers!.alive?.(Date.now());
    equal(run.warm, ready);
    equal((posted[0] as { t: string }).t, "start");
    run.kill();
    await sandbox.close();
  }
});
