import { equal } from "assert";
import { nextTurn, setTurnSliceMs, sliceSpent } from "./turn_slice.ts";

Deno.test("the first look of a turn is never spent; with a zero budget every later one is, until the next turn", async () => {
  const before = setTurnSliceMs(0);
  try {
    await nextTurn();
    equal(sliceSpent(), false, "the first look of a turn found it spent");
    equal(sliceSpent(), true);
    equal(sliceSpent(), true);
    await Promise.resolve();
    equal(sliceSpent(), true, "a microtask is not a new turn");
    await nextTurn();
    equal(sliceSpent(), false, "a later turn kept the spent budget");
  } finally {
    setTurnSliceMs(before);
  }
});
