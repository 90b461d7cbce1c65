import { deepEqual, equal, rejects } from "assert";
import {
  encodeFrame,
  frameBytes,
  FrameReader,
  type FrameSource,
  frameText,
  FrameTooLarge,
  FrameWriter,
  readFrames,
} from "./frames.ts";

/** A source that hands out `bytes` in reads of at most `step` bytes. */
function chunked(bytes: Uint8Array, step: number): FrameSource {
  let at = 0;
  return {
    read(p: Uint8Array): Promise<number | null> {
      if (at >= bytes.length) return Promise.resolve(null);
      const n = Math.min(step, p.length, bytes.length - at);
      p.set(bytes.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function collect(source: FrameSource, max: number): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const frame of readFrames(source, max)) out.push(frame);
  return out;
}

Deno.test("readFrames decodes frames whatever the reads cut them into", async () => {
  const values = [
    { a: 1 },
    "x".repeat(70_000),
    { ü: "ünïcödé 🚀" },
    [],
    "y".repeat(200_000),
    null,
    { last: true },
  ];
  const bytes = concat(values.map((v) => encodeFrame(v)));
  for (const step of [1, 3, 4, 5, 4096, 65_536, 100_000, bytes.length]) {
    deepEqual(await collect(chunked(bytes, step), 1 << 20), values, `reads of ${step}`);
  }
});

Deno.test("readFrames refuses a frame over the cap from its header alone", async () => {
  const bytes = concat([encodeFrame({ ok: 1 }), encodeFrame("z".repeat(1000))]);
  const seen: unknown[] = [];
  await rejects(async () => {
    for await (const frame of readFrames(chunked(bytes, 8), 500)) seen.push(frame);
  }, FrameTooLarge);
  deepEqual(seen, [{ ok: 1 }]);
});

Deno.test("FrameReader.pump hands over every frame in order and waits for a callback's promise", async () => {
  const values = [{ a: 1 }, "x".repeat(70_000), { b: [2] }, "y".repeat(200_000), { last: true }];
  const bytes = concat(values.map((v) => encodeFrame(v)));
  for (const step of [1, 5, 4096, 100_000, bytes.length]) {
    const seen: unknown[] = [];
    let waiting = false;
    await new FrameReader(chunked(bytes, step), 1 << 20).pump((text) => {
      // No frame is handed over while the one before it still waits.
      equal(waiting, false);
      seen.push(JSON.parse(text));
      if (seen.length % 2 === 0) return;
      waiting = true;
      return new Promise<void>((resolve) =>
        setTimeout(() => {
          waiting = false;
          resolve();
        }, 0)
      );
    });
    deepEqual(seen, values, `reads of ${step}`);
  }
});

Deno.test("FrameReader.next reads one frame at a time, then pump the rest, to the cap", async () => {
  const bytes = concat([
    encodeFrame({ token: "t" }),
    encodeFrame({ m: 1 }),
    encodeFrame("z".repeat(1000)),
  ]);
  const reader = new FrameReader(chunked(bytes, 3), 500);
  equal(await reader.next(), '{"token":"t"}');
  const seen: string[] = [];
  await rejects(() => reader.pump((text) => void seen.push(text)), FrameTooLarge);
  deepEqual(seen, ['{"m":1}']);
  equal(await new FrameReader(chunked(new Uint8Array(), 1), 10).next(), undefined);
});

Deno.test("FrameWriter writes every frame in order even when writes are partial", async () => {
  const values = [{ n: 1 }, { n: 2 }, "three"];
  const total = values.reduce((n: number, v) => n + encodeFrame(v).length, 0);
  const written: number[] = [];
  const all = Promise.withResolvers<void>();
  const sink = {
    write(p: Uint8Array): Promise<number> {
      const n = Math.min(p.length, 7);
      written.push(...p.subarray(0, n));
      if (written.length >= total) all.resolve();
      return Promise.resolve(n);
    },
  };
  const writer = new FrameWriter(sink);
  for (const v of values) writer.write(encodeFrame(v));
  await all.promise;
  equal(written.length, total);
  deepEqual(await collect(chunked(new Uint8Array(written), 1000), 1000), values);
});

Deno.test("frameText frames exactly the bytes TextEncoder gives, small or large", () => {
  const texts = [
    "",
    '{"a":1}',
    "ünïcödé 🚀",
    "\ud800 lone",
    "€".repeat(16 * 1024),
    "x".repeat(70_000),
  ];
  for (const text of texts) {
    deepEqual(frameText(text), frameBytes(new TextEncoder().encode(text)), text.slice(0, 20));
  }
});
