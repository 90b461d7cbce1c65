/**
 * The management API's job routes against a real runtime over real HTTP:
 * who sees what, authentication and bad requests, the keyset cursor, a
 * job's events as pages and as Server-Sent Events, and operator cancel.
 */
import { deepEqual, equal, ok } from "assert";
import { startServer, TOKENS } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";
import { call, readSse, running } from "./_api.ts";

const ADMIN = {
  adminPrincipals: ["bob"],
  tokens: { ...TOKENS, "carol-token": "carol" },
};
const TICKER = { agent: "ticker", input: { count: 5, interval_ms: 20 } };

Deno.test("a principal sees its own jobs, an admin sees every principal's", async () => {
  await using s = await startServer(ADMIN);
  const alice = await connect(s.url, "alice-token");
  const carol = await connect(s.url, "carol-token");
  const mine = await alice.submit({ agent: "echo", input: "a" });
  const theirs = await carol.submit({ agent: "echo", input: "c" });
  await alice.untilTerminal(mine.job_id!);
  await carol.untilTerminal(theirs.job_id!);

  const own = await call(s.http, "/v1/jobs", "alice-token");
  equal(own.status, 200);
  deepEqual(own.body.jobs.map((j: { job_id: string }) => j.job_id), [mine.job_id]);
  equal(own.body.jobs[0].principal, "alice");
  equal(own.body.jobs[0].status, "success");
  equal(own.body.next_cursor, null);

  const all = await call(s.http, "/v1/jobs", "bob-token");
  deepEqual(
    all.body.jobs.map((j: { job_id: string }) => j.job_id).sort(),
    [mine.job_id, theirs.job_id].sort(),
  );
  const filtered = await call(s.http, "/v1/jobs?principal=carol", "bob-token");
  deepEqual(filtered.body.jobs.map((j: { job_id: string }) => j.job_id), [theirs.job_id]);

  // Another principal's job is unknown to a non-admin, known to an admin.
  const hidden = await call(s.http, `/v1/jobs/${theirs.job_id}`, "alice-token");
  equal(hidden.status, 404);
  equal(hidden.body.error.code, "JOB_NOT_FOUND");
  equal((await call(s.http, `/v1/jobs/${theirs.job_id}/events`, "alice-token")).status, 404);
  const seen = await call(s.http, `/v1/jobs/${theirs.job_id}`, "bob-token");
  equal(seen.status, 200);
  equal(seen.body.job.principal, "carol");
  equal(seen.body.job.session_id, carol.sessionId);
  deepEqual(seen.body.job.credentials, []);

  const whoami = await call(s.http, "/v1/whoami", "alice-token");
  deepEqual(whoami.body, { principal: "alice", admin: false });
  deepEqual((await call(s.http, "/v1/whoami", "bob-token")).body, {
    principal: "bob",
    admin: true,
  });
  await alice.close();
  await carol.close();
});

Deno.test("401 without or with a bad token, 403 past a principal's reach, 400 for a limit above the maximum", async () => {
  await using s = await startServer(ADMIN);
  const none = await call(s.http, "/v1/jobs", undefined);
  equal(none.status, 401);
  equal(none.body.error.code, "UNAUTHENTICATED");
  const bad = await call(s.http, "/v1/jobs", "not-a-token");
  equal(bad.status, 401);
  equal(bad.body.error.code, "UNAUTHENTICATED");
  // A token in the query string is never read.
  equal((await call(s.http, "/v1/whoami?token=alice-token", undefined)).status, 401);

  const other = await call(s.http, "/v1/jobs?principal=carol", "alice-token");
  equal(other.status, 403);
  equal(other.body.error.code, "PERMISSION_DENIED");
  equal((await call(s.http, "/v1/jobs?principal=alice", "alice-token")).status, 200);
  for (const path of ["/v1/events", "/v1/diagnostics"]) {
    const refused = await call(s.http, path, "alice-token");
    equal(refused.status, 403, path);
    equal(refused.body.error.code, "PERMISSION_DENIED");
  }
  const drain = await call(s.http, "/v1/runtime/drain", "alice-token", {
    method: "POST",
    body: {},
  });
  equal(drain.status, 403);

  const tooMany = await call(s.http, "/v1/jobs?limit=501", "alice-token");
  equal(tooMany.status, 400);
  equal(tooMany.body.error.code, "INVALID_REQUEST");
  deepEqual(tooMany.body.error.details, { limit: 501, max: 500 });
  equal((await call(s.http, "/v1/jobs?limit=500", "alice-token")).status, 200);
  const events = await call(s.http, "/v1/events?limit=1001", "bob-token");
  equal(events.status, 400);
  deepEqual(events.body.error.details, { limit: 1001, max: 1000 });
  const cursor = await call(s.http, "/v1/jobs?cursor=garbage", "alice-token");
  equal(cursor.status, 400);
  equal(cursor.body.error.code, "INVALID_REQUEST");
  const status = await call(s.http, "/v1/jobs?status=finished", "alice-token");
  equal(status.status, 400);
  equal((await call(s.http, "/v1/jobs/job_unknown", "alice-token")).status, 404);
  const alice = await connect(s.url, "alice-token");
  const job = await alice.submit({ agent: "echo", input: 1 });
  await alice.untilTerminal(job.job_id!);
  const badCancel = await call(s.http, `/v1/jobs/${job.job_id}/cancel`, "alice-token", {
    method: "POST",
    body: { reason: 5 },
  });
  equal(badCancel.status, 400);
  equal(badCancel.body.error.code, "INVALID_REQUEST");
  const badDrain = await call(s.http, "/v1/runtime/drain", "bob-token", {
    method: "POST",
    body: { deadline_sec: -1 },
  });
  equal(badDrain.status, 400);
  equal((await call(s.http, "/v1/runtime", "bob-token")).body.drain.state, "serving");
  await alice.close();
});

Deno.test("the job cursor pages over more jobs than one page, newest first, without a duplicate or a gap", async () => {
  await using s = await startServer(ADMIN);
  const alice = await connect(s.url, "alice-token");
  const carol = await connect(s.url, "carol-token");
  const submitted: string[] = [];
  for (let i = 0; i < 12; i++) {
    const c = i % 3 === 0 ? carol : alice;
    const acc = await c.submit({ agent: "echo", input: i });
    await c.untilTerminal(acc.job_id!);
    submitted.push(acc.job_id!);
  }
  const alices = submitted.filter((_, i) => i % 3 !== 0);

  const pages = async (
    token: string,
    query: string,
    between?: () => Promise<void>,
  ): Promise<string[][]> => {
    const out: string[][] = [];
    let cursor: string | null = null;
    do {
      if (out.length > 0) await between?.();
      const page = await call(
        s.http,
        `/v1/jobs?limit=3${query}${cursor ? `&cursor=${cursor}` : ""}`,
        token,
      );
      equal(page.status, 200, JSON.stringify(page.body));
      out.push(page.body.jobs.map((j: { job_id: string }) => j.job_id));
      cursor = page.body.next_cursor;
    } while (cursor);
    return out;
  };
  // Alice's own, through her indexes.
  const own = await pages("alice-token", "");
  deepEqual(own.flat(), [...alices].reverse());
  ok(own.every((p) => p.length <= 3));
  ok(own.length >= 3);
  // Every principal's, for an admin, while new jobs arrive: they are newer
  // than the cursor, so the pages neither repeat nor skip one.
  const added: string[] = [];
  const addOne = async () => {
    const acc = await alice.submit({ agent: "echo", input: "meanwhile" });
    await alice.untilTerminal(acc.job_id!);
    added.push(acc.job_id!);
  };
  deepEqual((await pages("bob-token", "", addOne)).flat(), [...submitted].reverse());
  equal(added.length, 3);
  // Alice's own listing now starts with the three added, then the rest, each once.
  const before = [...added].reverse().concat([...alices].reverse());
  deepEqual((await pages("alice-token", "", addOne)).flat(), before);
  // With a filter the page still follows it.
  deepEqual(
    (await pages("bob-token", "&status=success&agent=echo")).flat(),
    [...added].reverse().concat([...submitted].reverse()),
  );
  deepEqual((await pages("bob-token", "&status=error")).flat(), []);
  await alice.close();
  await carol.close();
});

Deno.test("a job's events page from a cursor with has_more, then end at its terminal", async () => {
  await using s = await startServer(ADMIN);
  const c = await connect(s.url, "alice-token");
  const acc = await c.submit(TICKER);
  const seen = await c.untilTerminal(acc.job_id!);
  const logged = seen.filter((e) => e.type !== "job.accepted");

  const first = await call(s.http, `/v1/jobs/${acc.job_id}/events?limit=3`, "alice-token");
  equal(first.status, 200);
  deepEqual(first.body.events.map((e: { index: number }) => e.index), [0, 1, 2]);
  equal(first.body.next_after, 2);
  equal(first.body.has_more, true);
  const rest = await call(
    s.http,
    `/v1/jobs/${acc.job_id}/events?after=${first.body.next_after}&limit=100`,
    "alice-token",
  );
  equal(rest.body.has_more, false);
  const all = [...first.body.events, ...rest.body.events];
  deepEqual(all.map((e: { index: number }) => e.index), logged.map((_, i) => i));
  // The same envelopes the owner session got, in the same order.
  deepEqual(all.map((e: { type: string }) => e.type), logged.map((e) => e.type));
  deepEqual(all.map((e: { payload: unknown }) => e.payload), logged.map((e) => e.payload));
  equal(all.filter((e: { kind?: string }) => e.kind === "progress").length, 5);
  equal(all.at(-1).type, "job.result");
  const after = await call(
    s.http,
    `/v1/jobs/${acc.job_id}/events?after=${all.at(-1).index}`,
    "alice-token",
  );
  deepEqual(after.body, { events: [], next_after: all.at(-1).index, has_more: false });

  const job = await call(s.http, `/v1/jobs/${acc.job_id}`, "alice-token");
  equal(job.body.job.status, "success");
  equal(job.body.job.trace_id, acc.trace_id);
  await c.close();
});

Deno.test("a job's events as Server-Sent Events: history then live, each once and in order, ending after the terminal", async () => {
  await using s = await startServer(ADMIN);
  const c = await connect(s.url, "alice-token");
  const acc = await c.submit({ agent: "ticker", input: { count: 8, interval_ms: 150 } });
  // Some history exists before the stream opens; the rest arrives live.
  await c.next(
    (e) => e.job_id === acc.job_id && e.type === "job.event" && e.payload.body?.current === 2,
    15_000,
    "second tick",
  );
  const stream = readSse(s.http, acc.job_id!, "bob-token");
  await c.untilTerminal(acc.job_id!);
  const seen = c.seen.filter((e) => e.job_id === acc.job_id && e.type !== "job.accepted");
  const messages = await stream;
  const indexes = messages.map((m) => Number(m.id));
  deepEqual(indexes, messages.map((_, i) => i));
  deepEqual(messages.map((m) => m.data.index), indexes);
  equal(messages.at(-1)!.event, "job.result");
  equal(messages.filter((m) => m.data.kind === "progress").length, 8);
  deepEqual(
    messages.map((m) => m.data.payload.body?.current ?? null).filter((n) => n !== null),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  ok(messages.length >= 10, `${messages.length} messages`);
  // Exactly what the owner session got, in the same order.
  deepEqual(messages.map((m) => m.data.payload), seen.map((e) => e.payload));
  deepEqual(messages.map((m) => m.event), seen.map((e) => e.type));

  // Resuming from Last-Event-ID (or ?after) starts right after it.
  const resumed = await readSse(s.http, acc.job_id!, "alice-token", { "last-event-id": "3" });
  deepEqual(resumed.map((m) => Number(m.id)), indexes.slice(4));
  const after = await readSse(s.http, acc.job_id!, "alice-token", {}, `?after=${indexes.at(-2)}`);
  deepEqual(after.map((m) => m.event), ["job.result"]);
  await c.close();
});

Deno.test("operator cancel: an admin or the job's principal cancels; the session is told and the job ends CANCELLED naming the actor", async () => {
  await using s = await startServer(ADMIN);
  const alice = await connect(s.url, "alice-token");
  const watcher = await connect(s.url, "alice-token");

  const first = await alice.submit({ agent: "sleeper", input: { ms: 60_000 } });
  await running(alice, first.job_id!);
  watcher.send("job.subscribe", { job_id: first.job_id, history: true });
  await watcher.next((e) => e.type === "job.subscribed", 10_000, "job.subscribed");
  // Another non-admin principal cannot see it, so cannot cancel it.
  const stranger = await call(s.http, `/v1/jobs/${first.job_id}/cancel`, "carol-token", {
    method: "POST",
    body: {},
  });
  equal(stranger.status, 404);
  const byAdmin = await call(s.http, `/v1/jobs/${first.job_id}/cancel`, "bob-token", {
    method: "POST",
    body: { reason: "runaway" },
  });
  equal(byAdmin.status, 202, JSON.stringify(byAdmin.body));
  equal(byAdmin.body.job_id, first.job_id);
  const told = await alice.next(
    (e) => e.type === "job.cancelled" && e.job_id === first.job_id,
    10_000,
    "job.cancelled",
  );
  equal(told.payload.reason, "runaway");
  const end = (await alice.untilTerminal(first.job_id!)).at(-1)!;
  equal(end.type, "job.error");
  equal(end.payload.final_status, "cancelled");
  equal(end.payload.code, "CANCELLED");
  equal(end.payload.details.actor, "bob");
  equal(end.payload.details.admin, true);
  const subscriberEnd = (await watcher.untilTerminal(first.job_id!)).at(-1)!;
  deepEqual(subscriberEnd.payload, end.payload);
  const record = await call(s.http, `/v1/jobs/${first.job_id}`, "alice-token");
  equal(record.body.job.status, "cancelled");
  equal(record.body.job.error.code, "CANCELLED");
  // Cancelling a finished job is a conflict naming its status.
  const again = await call(s.http, `/v1/jobs/${first.job_id}/cancel`, "bob-token", {
    method: "POST",
  });
  equal(again.status, 409);
  equal(again.body.error.details.status, "cancelled");

  // The job's own principal may cancel it from elsewhere (no session needed).
  const second = await alice.submit({ agent: "sleeper", input: { ms: 60_000 } });
  await running(alice, second.job_id!);
  const byOwner = await call(s.http, `/v1/jobs/${second.job_id}/cancel`, "alice-token", {
    method: "POST",
  });
  equal(byOwner.status, 202);
  const ownEnd = (await alice.untilTerminal(second.job_id!)).at(-1)!;
  equal(ownEnd.payload.code, "CANCELLED");
  equal(ownEnd.payload.details.actor, "alice");
  equal(ownEnd.payload.details.admin, undefined);
  await alice.close();
  await watcher.close();
});

Deno.test("an SSE reader that stalls while the job runs gets every event once and in order when it reads on", async () => {
  await using s = await startServer(ADMIN);
  const c = await connect(s.url, "alice-token");
  const acc = await c.submit({ agent: "ticker", input: { count: 400, interval_ms: 0 } });
  const res = await fetch(`${s.http}/v1/jobs/${acc.job_id}/events`, {
    headers: { authorization: "Bearer alice-token", accept: "text/event-stream" },
  });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = (await reader.read()).value ?? "";
  // The reader stops here while the job runs to its end.
  await c.untilTerminal(acc.job_id!, 60_000);
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    text += value;
  }
  const ids = text.split("\n").filter((l) => l.startsWith("id: ")).map((l) => Number(l.slice(4)));
  deepEqual(ids, ids.map((_, i) => i));
  equal(ids.length, 402); // running, 400 ticks, the result
  ok(text.trimEnd().endsWith('"final_status":"success","result":{"ticks":400}}}'));
  await c.close();
});
