import { equal } from "assert";
import { AcceptHold } from "./accept_hold.ts";

Deno.test("an agent never seen ending is not held; one that ends fast is", () => {
  const hold = new AcceptHold({ holdMs: 3, fastMs: 3 });
  equal(hold.holdFor("echo@1.0.0"), 0);
  hold.ended("echo@1.0.0", 1.2);
  equal(hold.holdFor("echo@1.0.0"), 3);
  // Keys are separate: another agent (or another version) earns its own hold.
  equal(hold.holdFor("echo@2.0.0"), 0);
  equal(hold.holdFor("sleeper@1.0.0"), 0);
});

Deno.test("an agent whose jobs slow down stops being held after a few, and is held again once they are fast", () => {
  const hold = new AcceptHold({ holdMs: 3, fastMs: 3 });
  for (let i = 0; i < 10; i++) hold.ended("a@1", 1);
  // One stalled job moves the average but does not cancel the hold on its own.
  hold.ended("a@1", 500);
  equal(hold.holdFor("a@1"), 3);
  hold.ended("a@1", 1);
  equal(hold.holdFor("a@1"), 3);
  for (let i = 0; i < 3; i++) hold.ended("a@1", 50);
  equal(hold.holdFor("a@1"), 0);
  for (let i = 0; i < 30; i++) hold.ended("a@1", 1);
  equal(hold.holdFor("a@1"), 3);
});

Deno.test("a hold of 0 never holds", () => {
  const hold = new AcceptHold({ holdMs: 0, fastMs: 3 });
  hold.ended("echo@1.0.0", 0.5);
  equal(hold.holdFor("echo@1.0.0"), 0);
});

Deno.test("the least recently ended agent key is forgotten past the bound", () => {
  const hold = new AcceptHold({ holdMs: 3, fastMs: 3 });
  hold.ended("first@1", 1);
  for (let i = 0; i < 1024; i++) hold.ended(`other${i}@1`, 1);
  equal(hold.holdFor("first@1"), 0);
  equal(hold.holdFor("other1023@1"), 3);
});
