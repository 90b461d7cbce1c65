import { equal } from "assert";
import { isEventMessage } from "./supervisor.ts";
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
