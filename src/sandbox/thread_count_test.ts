import { equal } from "assert";
import { ThreadCounter } from "./thread_count.ts";

Deno.test("ThreadCounter counts a process's worker threads, in order, and nothing for a process that is gone", async () => {
  const counter = new ThreadCounter();
  try {
    equal(await counter.count(Deno.pid), 0);
    const workers = [1, 2].map(() =>
      new Worker(`data:application/javascript,setInterval(() => {}, 1000)`, { type: "module" })
    );
    try {
      // Each worker's thread exists once the constructor returns.
      const [a, b] = await Promise.all([counter.count(Deno.pid), counter.count(Deno.pid)]);
      equal(a, 2);
      equal(b, 2);
    } finally {
      for (const w of workers) w.terminate();
    }
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    equal(await counter.count(gone.pid), undefined);
  } finally {
    await counter.close();
  }
  equal(await counter.count(Deno.pid), undefined, "a closed counter cannot tell");
});
