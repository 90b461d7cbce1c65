import { equal, rejects } from "assert";
import { isBusy, whileBusy } from "./busy.ts";

Deno.test("whileBusy retries a write that meets another process's lock until it lands", async () => {
  let attempts = 0;
  const result = await whileBusy(() => {
    attempts++;
    if (attempts < 4) return Promise.reject(new TypeError("database is locked"));
    return Promise.resolve("landed");
  });
  equal(result, "landed");
  equal(attempts, 4);
});

Deno.test("whileBusy does not retry any other failure", async () => {
  let attempts = 0;
  await rejects(
    whileBusy(() => {
      attempts++;
      return Promise.reject(new Error("disk I/O error"));
    }),
    /disk I\/O error/,
  );
  equal(attempts, 1);
});

Deno.test("isBusy knows SQLite's contention messages and nothing else", () => {
  equal(isBusy(new Error("database is locked")), true);
  equal(isBusy(new Error("database table is locked")), true);
  equal(isBusy(new Error("database is busy")), true);
  equal(isBusy(new Error("database or disk is full")), false);
});
