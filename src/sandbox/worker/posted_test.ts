import { deepEqual, equal } from "assert";
import { readPosted } from "./posted.ts";

Deno.test("readPosted parses JSON text and keeps the text, own __proto__ keys included", () => {
  const text = '{"t":"result","j":3,"value":{"__proto__":{"x":1}}}';
  const { msg, text: kept } = readPosted(text);
  equal(kept, text);
  deepEqual(msg, JSON.parse(text));
  const value = (msg as { value: object }).value;
  equal(Object.hasOwn(value, "__proto__"), true);
  equal(Object.getPrototypeOf(value), Object.prototype);
});

Deno.test("readPosted leaves objects, and strings that are not JSON, as they were posted", () => {
  const obj = { t: "beat" };
  equal(readPosted(obj).msg, obj);
  equal(readPosted(obj).text, undefined);
  for (const raw of ["hello", '{"t":"result"', "1},{", ""]) {
    deepEqual(readPosted(raw), { msg: raw });
  }
  equal(readPosted(null).msg, null);
});
