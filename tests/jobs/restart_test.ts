import { deepEqual, equal, ok } from "assert";
import { tempKv } from "../../testing/temp_dir.ts";
import { type ChildServer, startChildServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";

type Entry = { job_id: string; status: string; agent: string; last_event_seq: number };

Deno.test("after SIGKILL and a restart on the same KV, finished jobs keep their outcome, running ones end in error, keys still replay", async () => {
  await using tmp = await tempKv("arcp_restart_");
  const { kvPath } = tmp;
  const sleeperSubmit = { agent: "sleeper", input: { ms: 60_000 }, idempotency_key: "slow" };
  const echoSubmit = { agent: "echo", input: { before: "crash" }, idempotency_key: "fast" };
  let child: ChildServer | undefined;
  try {
    child = await startChildServer(kvPath);
    let sleeperId: string;
    let echoId: string;
    {
      await using c = await connect(child.url);
      const sleeper = await c.submit(sleeperSubmit);
      equal(sleeper.type, "job.accepted");
      sleeperId = sleeper.job_id!;
      await c.next((e) => e.job_id === sleeperId && e.payload?.body?.phase === "sleeping");
      const echo = await c.submit(echoSubmit);
      equal(echo.type, "job.accepted");
      echoId = echo.job_id!;
      equal((await c.untilTerminal(echoId)).at(-1)!.type, "job.result");
      const status = await child.stop("SIGKILL");
      equal(status.signal, "SIGKILL");
      child = undefined;
    }

    child = await startChildServer(kvPath);
    await using c = await connect(child.url);
    const req = c.send("session.list_jobs", {});
    const list = await c.next((e) => e.type === "session.jobs" && e.payload.request_id === req.id);
    const byId = new Map<string, Entry>(list.payload.jobs.map((j: Entry) => [j.job_id, j]));
    deepEqual([...byId.keys()].sort(), [echoId, sleeperId].sort());
    equal(byId.get(echoId)!.status, "success");
    equal(byId.get(sleeperId)!.status, "error");
    equal(byId.get(sleeperId)!.agent, "sleeper@1.0.0");

    const sleeperAgain = await c.submit(sleeperSubmit);
    equal(sleeperAgain.type, "job.accepted");
    equal(sleeperAgain.job_id, sleeperId);
    const echoAgain = await c.submit(echoSubmit);
    equal(echoAgain.type, "job.accepted");
    equal(echoAgain.job_id, echoId);

    // The restarted runtime runs new work normally.
    const fresh = await c.submit({ agent: "echo", input: "after" });
    ok(fresh.job_id !== echoId);
    deepEqual((await c.untilTerminal(fresh.job_id!)).at(-1)!.payload.result, {
      echo: "after",
      version: "2.0.0",
    });
  } finally {
    await child?.stop("SIGKILL");
  }
});
