import { deepEqual, equal } from "assert";
import { permissionsForLease } from "./permissions.ts";
import { WarmDemand, type WorkerTemplate } from "./warm_demand.ts";

const TEMPLATE: WorkerTemplate = {
  agentUrl: "file:///agents/ticker.ts",
  permissions: permissionsForLease({}),
  egress: [],
};

Deno.test("a burst calls for as many warm workers as it had launches, within the budget, for a while after it", () => {
  const demand = new WarmDemand({ bursts: true });
  for (let i = 0; i < 50; i++) demand.note("k", TEMPLATE, 1_000 + i);
  deepEqual(demand.wanted(1_100, 24).map((w) => [w.key, w.n]), [["k", 24]]);
  deepEqual(demand.wanted(1_100, 64).map((w) => [w.key, w.n]), [["k", 50]]);
  // Past the rate's window, while the burst's jobs may still be getting through.
  deepEqual(demand.wanted(7_000, 64).map((w) => [w.key, w.n]), [["k", 50]]);
  // Long after it: one warm worker while the key was used in the last minute.
  deepEqual(demand.wanted(30_000, 64).map((w) => [w.key, w.n]), [["k", 1]]);
  // Long unused: none.
  equal(demand.wanted(62_000, 64).length, 0);
});

Deno.test("launches spread out are no burst: the pool follows their rate", () => {
  const demand = new WarmDemand({ bursts: true });
  // One every 500 ms, ready in 100 ms: one worker covers them.
  for (let i = 0; i < 10; i++) demand.note("k", TEMPLATE, 1_000 + 500 * i);
  deepEqual(demand.wanted(5_600, 64).map((w) => w.n), [1]);
});

Deno.test("the budget goes to the most wanted keys first", () => {
  const demand = new WarmDemand({ bursts: true });
  for (let i = 0; i < 6; i++) demand.note("big", TEMPLATE, 1_000 + i);
  for (let i = 0; i < 3; i++) demand.note("small", TEMPLATE, 1_000 + i);
  deepEqual(demand.wanted(1_010, 8).map((w) => [w.key, w.n]), [["big", 6], ["small", 2]]);
});

Deno.test("a smaller burst later does not shrink the pool the larger one called for until that one is old", () => {
  const demand = new WarmDemand({ bursts: true });
  for (let i = 0; i < 10; i++) demand.note("k", TEMPLATE, 1_000 + i);
  for (let i = 0; i < 3; i++) demand.note("k", TEMPLATE, 11_000 + i);
  deepEqual(demand.wanted(11_100, 64).map((w) => w.n), [10]);
  // Once the large one is past its hold, a later burst counts afresh.
  for (let i = 0; i < 4; i++) demand.note("k", TEMPLATE, 25_000 + i);
  deepEqual(demand.wanted(25_100, 64).map((w) => w.n), [4]);
});

Deno.test("without bursts, the pool follows the rate alone", () => {
  const demand = new WarmDemand();
  for (let i = 0; i < 50; i++) demand.note("k", TEMPLATE, 1_000 + i);
  // 10 launches a second, ready in 100 ms: 2.
  deepEqual(demand.wanted(1_100, 64).map((w) => w.n), [2]);
});
