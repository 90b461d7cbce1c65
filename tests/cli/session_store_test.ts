/** The file `arcp submit` keeps sessions in for `arcp cancel`. */
import { deepEqual, equal } from "assert";
import { sessionsPath, SessionStore, type StoredSession } from "../../src/cli/session_store.ts";

function session(id: string, jobs: string[], url = "ws://a/arcp"): StoredSession {
  return {
    url,
    session_id: id,
    resume_token: `rt-${id}`,
    last_event_seq: 3,
    jobs,
    saved_at: "2026-01-01T00:00:00Z",
  };
}

Deno.test("the sessions file is ARCP_CLI_SESSIONS, else under the home directory", () => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  equal(sessionsPath(env({ ARCP_CLI_SESSIONS: "/x/s.json", HOME: "/h" })), "/x/s.json");
  equal(sessionsPath(env({ HOME: "/h" })), "/h/.arcp/cli-sessions.json");
  equal(sessionsPath(env({ USERPROFILE: "C:\\u" })), "C:\\u/.arcp/cli-sessions.json");
  equal(sessionsPath(env({})), "./data/cli-sessions.json");
});

Deno.test("sessions are found by runtime and job, replaced by id, and forgotten job by job", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/nested/cli-sessions.json`;
    const store = new SessionStore(path);
    equal(await store.find("ws://a/arcp", "job_1"), undefined);
    await store.save(session("s1", ["job_1", "job_2"]));
    await store.save(session("s2", ["job_3"]));
    await store.save(session("s1", ["job_1", "job_2"], "ws://b/arcp"));
    equal((await store.find("ws://a/arcp", "job_2"))?.session_id, "s1");
    equal(await store.find("ws://c/arcp", "job_2"), undefined);
    await store.save({ ...session("s1", ["job_1", "job_2"]), resume_token: "rotated" });
    equal((await store.find("ws://a/arcp", "job_1"))?.resume_token, "rotated");

    await store.forgetJob(session("s1", []), "job_1");
    deepEqual((await store.find("ws://a/arcp", "job_2"))?.jobs, ["job_2"]);
    await store.forgetJob(session("s1", []), "job_2");
    equal(await store.find("ws://a/arcp", "job_2"), undefined);
    equal((await store.find("ws://b/arcp", "job_2"))?.session_id, "s1", "other runtime untouched");
    await store.forget(session("s2", []));
    equal(await store.find("ws://a/arcp", "job_3"), undefined);

    const info = await Deno.stat(path);
    if (info.mode !== null) equal(info.mode & 0o777, 0o600);
    deepEqual([...Deno.readDirSync(`${dir}/nested`)].map((e) => e.name), ["cli-sessions.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a damaged sessions file is treated as empty and replaced on the next save", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/cli-sessions.json`;
    await Deno.writeTextFile(path, "{ not json");
    const store = new SessionStore(path);
    equal(await store.find("ws://a/arcp", "job_1"), undefined);
    await store.save(session("s1", ["job_1"]));
    equal((await store.find("ws://a/arcp", "job_1"))?.session_id, "s1");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
