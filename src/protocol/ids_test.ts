import { equal, ok } from "assert";
import { newUlid } from "./ids.ts";

Deno.test("ULIDs are 26 Crockford base-32 characters, unique and in minting order", () => {
  const ids = Array.from({ length: 20_000 }, () => newUlid());
  for (const id of ids) ok(/^[0-9A-HJKMNP-TV-Z]{26}$/.test(id), id);
  equal(new Set(ids).size, ids.length);
  for (let i = 1; i < ids.length; i++) ok(ids[i - 1] < ids[i], `${ids[i - 1]} ≥ ${ids[i]}`);
  // The random part is drawn afresh each millisecond: ids of different
  // milliseconds do not share it.
  const randoms = new Set(ids.map((id) => id.slice(10, 20)));
  ok(randoms.size > 1, "every id has the same random part");
});
