import { equal } from "assert";
import { defaultMemoryMb, defaultWarmMax } from "./memory_ceiling.ts";

const GiB = 1024 ** 3;

Deno.test("defaultWarmMax: a sixteenth of the machine's memory at 64 MiB a process, 8 to 32", () => {
  equal(defaultWarmMax(0), 8);
  equal(defaultWarmMax(4 * GiB), 8);
  equal(defaultWarmMax(16 * GiB), 16);
  equal(defaultWarmMax(24 * GiB), 24);
  equal(defaultWarmMax(256 * GiB), 32);
});

Deno.test("defaultMemoryMb: an eighth of the machine's memory, 256 MiB to 4 GiB, above the heap cap", () => {
  equal(defaultMemoryMb(512, 0), 640);
  equal(defaultMemoryMb(128, 8 * GiB), 1024);
  equal(defaultMemoryMb(128, 64 * GiB), 4096);
});
