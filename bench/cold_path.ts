/**
 * How much slower a piece of the runtime's own per-job work runs after a
 * pause than back to back, and whether it matters what the CPU did in the
 * pause. The work: decode a `job.submit` envelope, validate its payload
 * with the runtime's schema, build a record and encode a `job.accepted`,
 * three times. The pauses, interleaved in blocks over several rounds:
 * none, a timer of `--gap-ms` (the thread sleeps in the event loop), as long
 * in `Atomics.wait` (it sleeps outside it), and as long spinning in a tiny
 * loop (the CPU never idles) or writing across 8 MiB. Work that slows as much
 * after spinning as after sleeping lost its code and data from the caches,
 * not to idle states or wake-ups. Reports; asserts nothing.
 *
 * ```sh
 * deno run -A bench/cold_path.ts                # 50 ms pauses, as figure 11b's jobs
 * deno run -A bench/cold_path.ts --gap-ms 5 --rounds 3
 * ```
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { fmt, stats } from "./_util.ts";
import { decodeEnvelope, decodePayload } from "../src/protocol/envelope.ts";
import { SubmitSchema } from "../src/protocol/messages.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "gap-ms": { type: "string" },
    rounds: { type: "string" },
    block: { type: "string" },
  },
});
/** The pause (ms): 50 as between jobs at 20 a second. */
const GAP_MS = Number(values["gap-ms"] ?? 50);
/** Rounds, and iterations of each pause per round. */
const ROUNDS = Number(values.rounds ?? 6);
const BLOCK = Number(values.block ?? 40);

const SUBMIT = JSON.stringify({
  arcp: "1.1",
  id: "01JABCDEFGHJKMNPQRSTVWXYZ0",
  type: "job.submit",
  session_id: "sess_01JABCDEFGHJKMNPQRSTVWXYZ",
  payload: { agent: "echo", input: { hello: "world", n: 42, list: [1, 2, 3] } },
});
const encoder = new TextEncoder();

/** The work an iteration times; returns bytes encoded, so none of it is dead. */
function work(): number {
  let bytes = 0;
  for (let k = 0; k < 3; k++) {
    const envelope = decodeEnvelope(SUBMIT);
    const submit = decodePayload(SubmitSchema, envelope.payload);
    const record = {
      job_id: crypto.randomUUID(),
      agent: submit.agent,
      input: submit.input,
      ts: new Date().toISOString(),
    };
    bytes += encoder.encode(JSON.stringify({ type: "job.accepted", payload: record })).length;
  }
  return bytes;
}

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const parked = new Int32Array(new SharedArrayBuffer(4));
const scratch = new Float64Array(1024 * 1024);

/** Pauses by name: each ends in the event loop, so every iteration starts alike. */
const PAUSES: Record<string, () => Promise<unknown>> = {
  "none (back to back)": () => tick(0),
  [`a ${GAP_MS} ms timer`]: () => tick(GAP_MS),
  [`${GAP_MS} ms in Atomics.wait`]: () => {
    Atomics.wait(parked, 0, 0, GAP_MS);
    return tick(0);
  },
  [`${GAP_MS} ms spinning in a tiny loop`]: () => {
    const end = performance.now() + GAP_MS;
    while (performance.now() < end);
    return tick(0);
  },
  [`${GAP_MS} ms spinning across 8 MiB`]: () => {
    const end = performance.now() + GAP_MS;
    for (let i = 0; performance.now() < end;) {
      for (let k = 0; k < 4096; k++, i += 8) scratch[i % scratch.length] += 1;
    }
    return tick(0);
  },
};

let sink = 0;
for (let i = 0; i < 300; i++) sink += work();
const samples = new Map(Object.keys(PAUSES).map((name) => [name, [] as number[]]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, pause] of Object.entries(PAUSES)) {
    for (let i = 0; i < BLOCK; i++) {
      await pause();
      const start = performance.now();
      sink += work();
      samples.get(name)!.push((performance.now() - start) * 1000);
    }
  }
}
console.log(`the work after each pause, µs (${ROUNDS} rounds × ${BLOCK}; ${sink} bytes encoded)`);
const back = stats(samples.get("none (back to back)")!).p50;
for (const [name, list] of samples) {
  const s = stats(list);
  console.log(
    `  ${name.padEnd(36)} p50 ${fmt(s.p50).padStart(7)}  p90 ${fmt(s.p90).padStart(7)}  ` +
      `${fmt(s.p50 / back)}× back to back`,
  );
}
