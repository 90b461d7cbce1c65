import { equal, ok } from "assert";
import { MAX_TIMER_MS, setDeadline } from "./timers.ts";

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
