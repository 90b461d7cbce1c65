import { equal } from "assert";
import {
  defaultMemoryMb,
  defaultSpareBudget,
  defaultWarmMax,
  perSpareBytes,
  SPARE_WORKER_MB,
} from "./memory_ceiling.ts";
import { RSS_REPORT_STEP } from "./host/protocol.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

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

Deno.test("defaultSpareBudget: a sixteenth of the machine's memory", () => {
  equal(defaultSpareBudget(0), 0);
  equal(defaultSpareBudget(1 * GiB), 64 * MiB);
  equal(defaultSpareBudget(24 * GiB), 1536 * MiB);
});

Deno.test("perSpareBytes: the growth since no spare, two report steps added, over the spares", () => {
  const base = 60 * MiB;
  // A heavy agent's spares: 14 MiB each, measured.
  equal(perSpareBytes(base + 4 * 14 * MiB, base, 4), 14 * MiB + (2 * RSS_REPORT_STEP) / 4);
  equal(perSpareBytes(base + 32 * MiB, base, 1), 32 * MiB + 2 * RSS_REPORT_STEP);
});

Deno.test("perSpareBytes: never below the measured floor, whatever the samples say", () => {
  const floor = SPARE_WORKER_MB * MiB;
  // An echo spare measures ~6.4 MiB: charged the floor.
  equal(perSpareBytes(60 * MiB + 8 * 6.4 * MiB, 60 * MiB, 8), floor);
  // A resident set that fell below its base (pages given back) or spares
  // reported before their growth was sampled.
  equal(perSpareBytes(50 * MiB, 60 * MiB, 2), floor);
  equal(perSpareBytes(60 * MiB, 60 * MiB, 1), floor);
  // A count of 0 is read as 1 rather than dividing by it.
  equal(perSpareBytes(100 * MiB, 60 * MiB, 0), 40 * MiB + 2 * RSS_REPORT_STEP);
});
