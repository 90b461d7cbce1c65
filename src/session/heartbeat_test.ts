import { deepEqual, equal } from "assert";
import { Heartbeat } from "./heartbeat.ts";

Deno.test("heartbeats sharing one timer: a silent one is pinged then lost, one that answers is not, and the timer stops with the last", async () => {
  const seen: string[] = [];
  let answering: Heartbeat | undefined = undefined;
  const { promise: lost, resolve } = Promise.withResolvers<void>();
  const silent = new Heartbeat(1000, {
    ping: () => seen.push("silent ping"),
    lost: () => {
      seen.push("silent lost");
      resolve();
    },
  });
  answering = new Heartbeat(1000, {
    // Answers each ping at once, as a client that reads does.
    ping: () => answering?.heard(),
    lost: () => seen.push("answering lost"),
  });
  try {
    equal(Heartbeat.timers, 1);
    await lost;
    deepEqual(seen, ["silent ping", "silent lost"]);
  } finally {
    silent.stop();
    answering.stop();
  }
  equal(Heartbeat.timers, 0);
});
