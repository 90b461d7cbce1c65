import { equal, ok } from "assert";
import { MAX_TIMER_MS, setDeadline, ShortWaits } from "./timers.ts";

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("a deadline more than 2^31-1 ms away does not fire early", async () => {
  for (const ahead of [MAX_TIMER_MS + 1, MAX_TIMER_MS + 60_000, 100 * 24 * 3600 * 1000]) {
    let fired = false;
    const cancel = setDeadline(() => fired = true, Date.now() + ahead);
    await wait(100);
    cancel();
    equal(fired, false, `a deadline ${ahead} ms ahead fired within 100 ms`);
  }
});

Deno.test("a near deadline fires once, not before it", async () => {
  const deadline = Date.now() + 50;
  const calls: number[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  setDeadline(() => {
    calls.push(Date.now());
    resolve();
  }, deadline);
  await promise;
  await wait(100);
  equal(calls.length, 1);
  ok(calls[0] >= deadline, `fired ${deadline - calls[0]} ms early`);
});

Deno.test("a deadline already past fires at once", () => {
  let fired = 0;
  setDeadline(() => fired++, Date.now() - 1000);
  equal(fired, 1);
});

Deno.test("a cancelled near deadline never fires", async () => {
  let fired = false;
  const cancel = setDeadline(() => fired = true, Date.now() + 30);
  cancel();
  await wait(100);
  equal(fired, false);
});

Deno.test("short waits: each fires once, not before it is due, waits of a length in order", async () => {
  const waits = new ShortWaits();
  const fired: Array<[string, number, number]> = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  const add = (name: string, ms: number) => {
    const due = performance.now() + ms;
    waits.wait({}, ms, () => {
      fired.push([name, performance.now(), due]);
      if (fired.length === 6) resolve();
    });
  };
  // A long wait first, then shorter ones it must not hold back, then one the short timer covers.
  add("a20", 20);
  add("b3", 3);
  add("c3", 3);
  add("d10", 10);
  await wait(5);
  add("e3", 3);
  add("f20", 20);
  await promise;
  await wait(40);
  waits.stop();
  const names = fired.map(([name]) => name);
  equal([...names].sort().join(" "), "a20 b3 c3 d10 e3 f20");
  for (const [first, then] of [["b3", "c3"], ["c3", "e3"], ["a20", "f20"]]) {
    ok(names.indexOf(first) < names.indexOf(then), `${then} fired before ${first}`);
  }
  for (const [name, at, due] of fired) ok(at >= due - 0.25, `${name} fired ${due - at} ms early`);
});

Deno.test("short waits: a wait left before it is due never fires, nor one waited again", async () => {
  const waits = new ShortWaits();
  const fired: string[] = [];
  const key = {};
  const other = {};
  waits.wait(key, 3, () => fired.push("first"));
  waits.wait(key, 6, () => fired.push("again"));
  waits.wait(other, 3, () => fired.push("left"));
  waits.leave(other);
  // Leaving twice, or a key that never waited, is harmless.
  waits.leave(other);
  waits.leave({});
  await wait(40);
  waits.stop();
  equal(fired.join(" "), "again");
});

Deno.test("short waits: stop drops every wait and ends the clock thread", async () => {
  const waits = new ShortWaits();
  let fired = 0;
  for (let i = 0; i < 50; i++) waits.wait({}, 1 + (i % 5), () => fired++);
  waits.stop();
  // The test's sanitizers fail it if the clock thread or a timer is still alive.
  await wait(30);
  equal(fired, 0);
  // Usable again after a stop.
  const { promise, resolve } = Promise.withResolvers<void>();
  waits.wait({}, 2, resolve);
  await promise;
  waits.stop();
});

Deno.test("short waits: a burst larger than a turn's budget is called in full, in order", async () => {
  const waits = new ShortWaits();
  const order: number[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  const n = 5_000;
  for (let i = 0; i < n; i++) {
    waits.wait({}, 2, () => {
      order.push(i);
      // Slow callbacks, so the burst spans several turns.
      const until = performance.now() + 0.01;
      while (performance.now() < until);
      if (order.length === n) resolve();
    });
  }
  await promise;
  waits.stop();
  equal(order.length, n);
  ok(order.every((v, i) => v === i), "called out of order");
});
