import { deepEqual, equal, ok } from "assert";
import { type FrameSink, SendQueue } from "./send_queue.ts";

/** A socket that holds what it is given until the test drains it. */
class HeldSink implements FrameSink {
  bufferedAmount = 0;
  sent: string[] = [];
  send(text: string): void {
    this.sent.push(text);
    this.bufferedAmount += text.length;
  }
  drain(): void {
    this.bufferedAmount = 0;
  }
}

const emptied = (q: SendQueue) => new Promise<void>((r) => q.whenEmpty(r));

Deno.test("frames go to the socket while its window has room; the rest wait and follow in order", async () => {
  const sink = new HeldSink();
  const q = new SendQueue(sink, { windowBytes: 10, maxBytes: 1000, onOverflow() {} });
  q.push("aaaaa");
  q.push("bbbbb");
  q.push("ccccc");
  q.push("ddddd");
  deepEqual(sink.sent, ["aaaaa", "bbbbb"]);
  equal(q.bufferedAmount, 20, "the socket's 10 bytes and the queue's 10");
  sink.drain();
  await emptied(q);
  deepEqual(sink.sent, ["aaaaa", "bbbbb", "ccccc", "ddddd"]);
  equal(q.bufferedAmount, 10);
});

Deno.test("past the cap the overflow is reported once, counting socket and queue", () => {
  const sink = new HeldSink();
  let overflows = 0;
  const q = new SendQueue(sink, { windowBytes: 4, maxBytes: 12, onOverflow: () => overflows++ });
  for (let i = 0; i < 3; i++) q.push("xxxx");
  equal(overflows, 0, "12 bytes is at the cap, not past it");
  q.push("y");
  equal(overflows, 1);
  q.push("z");
  equal(overflows, 1);
  q.stop();
});

Deno.test("stop drops what waits and ignores later frames; whenEmpty runs at once on an empty queue", () => {
  const sink = new HeldSink();
  const q = new SendQueue(sink, { windowBytes: 1, maxBytes: 1000, onOverflow() {} });
  q.push("a");
  q.push("b");
  let ran = false;
  q.whenEmpty(() => (ran = true));
  equal(ran, false, "b still waits");
  q.stop();
  q.push("c");
  deepEqual(sink.sent, ["a"]);
  equal(q.bufferedAmount, 1, "only what the socket already holds");
  equal(ran, false, "a stopped queue never empties by sending");
  const fresh = new SendQueue(new HeldSink(), { windowBytes: 1, maxBytes: 1, onOverflow() {} });
  fresh.whenEmpty(() => (ran = true));
  equal(ran, true);
});

/** A socket that holds what it is given, and says when it has been looked at `n` times. */
class WatchedSink implements FrameSink {
  held = 0;
  /** Once set, what is sent is written at once. */
  reading = false;
  sent: string[] = [];
  looks = 0;
  #at: number;
  #looked: () => void;
  constructor(n: number, looked: () => void) {
    this.#at = n;
    this.#looked = looked;
  }
  get bufferedAmount(): number {
    if (++this.looks === this.#at) this.#looked();
    return this.held;
  }
  send(text: string): void {
    this.sent.push(text);
    if (!this.reading) this.held += text.length;
  }
}

Deno.test("a socket that stops draining is still looked at, and its queue follows once it drains", async () => {
  const { promise: lookedOften, resolve } = Promise.withResolvers<void>();
  // More looks than the queue takes on the turns right after a push, so it is polling by timer.
  const sink = new WatchedSink(20, resolve);
  const q = new SendQueue(sink, { windowBytes: 4, maxBytes: 1000, onOverflow() {} });
  q.push("aaaa");
  q.push("bbbb");
  q.push("cccc");
  await lookedOften;
  deepEqual(sink.sent, ["aaaa"], "nothing moves while the socket holds its window");
  sink.reading = true;
  sink.held = 0;
  await emptied(q);
  deepEqual(sink.sent, ["aaaa", "bbbb", "cccc"]);
});

Deno.test("the socket is never handed more than its window and one frame, counting UTF-8 bytes", async () => {
  /** Counts what it holds in UTF-8 bytes, as Deno's WebSocket does. */
  const sink = new (class implements FrameSink {
    bufferedAmount = 0;
    most = 0;
    onSend: (() => void) | undefined;
    send(text: string): void {
      this.bufferedAmount += new TextEncoder().encode(text).byteLength;
      this.most = Math.max(this.most, this.bufferedAmount);
      this.onSend?.();
    }
  })();
  const frame = "ééééé"; // 5 UTF-16 units, 10 bytes
  const q = new SendQueue(sink, { windowBytes: 12, maxBytes: 1000, onOverflow() {} });
  for (let i = 0; i < 8; i++) q.push(frame);
  const { promise: looked, resolve } = Promise.withResolvers<void>();
  sink.onSend = resolve;
  sink.bufferedAmount = 0;
  sink.most = 0;
  // One look hands over what fits at once; this runs after it.
  await looked;
  ok(sink.most <= 12 + 10, `the socket held ${sink.most} bytes`);
  equal(sink.bufferedAmount, 20, "two frames, the second starting below the window");
  q.stop();
});

Deno.test("a socket that reports its writes is not looked at while it holds its window; each report hands over the next window in order", async () => {
  /** Holds what it is given until the test says it was written. */
  const sink = new (class implements FrameSink {
    readonly reportsDrain = true;
    held = 0;
    looks = 0;
    sent: string[] = [];
    get bufferedAmount(): number {
      this.looks++;
      return this.held;
    }
    send(text: string): void {
      this.sent.push(text);
      this.held += text.length;
    }
  })();
  const q = new SendQueue(sink, { windowBytes: 8, maxBytes: 1000, onOverflow() {} });
  for (const t of ["aaaa", "bbbb", "cccc", "dddd", "eeee"]) q.push(t);
  deepEqual(sink.sent, ["aaaa", "bbbb"]);
  let emptied = false;
  q.whenEmpty(() => (emptied = true));
  const looks = sink.looks;
  // Turns and timers go by: nothing looks at the socket, nothing moves.
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  equal(sink.looks, looks, "the queue polled a socket that reports its writes");
  deepEqual(sink.sent, ["aaaa", "bbbb"]);
  sink.held = 0;
  q.drained();
  deepEqual(sink.sent, ["aaaa", "bbbb", "cccc", "dddd"]);
  equal(emptied, false);
  sink.held = 0;
  q.drained();
  deepEqual(sink.sent, ["aaaa", "bbbb", "cccc", "dddd", "eeee"]);
  equal(emptied, true);
  q.drained();
  equal(sink.sent.length, 5, "a report with nothing waiting sends nothing");
});
