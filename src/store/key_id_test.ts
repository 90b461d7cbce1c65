import { equal, notEqual } from "assert";
import { keyId, keyIdUnder } from "./key_id.ts";
import { Store } from "./store.ts";
import type { JobRecord, SessionRecord } from "./records.ts";

Deno.test("different keys have different identities, however their parts look", () => {
  const keys: Deno.KvKey[] = [
    ["a", "b"],
    ["a\u0000b"],
    ["a", 1],
    ["a", "1"],
    ["a1"],
    [1],
    ["\u00011"],
    ['["a"]'],
    ['\u0002["a"]'],
    ["a", 1n],
    ["a", "1n"],
    ["a", true],
    ["a", "true"],
    ["a", new Uint8Array([1, 2])],
    ["a", "1,2"],
    ["a", Infinity],
    ["a", "Infinity"],
    [],
  ];
  const ids = keys.map(keyId);
  for (let i = 0; i < keys.length; i++) {
    for (let j = i + 1; j < keys.length; j++) notEqual(ids[i], ids[j], `${i} and ${j}`);
  }
  equal(keyId(["v1", "job", "job_1"]), keyId(["v1", "job", "job_1"]));
});

Deno.test("an identity extended from a prefix's is the whole key's", () => {
  const prefix = keyId(["v1", "pjob"]);
  for (const key of [["v1", "pjob", "alice", 17, "job_1"], ["v1", "pjob", "odd\u0000name", 1]]) {
    equal(keyIdUnder(prefix, key, 2), keyId(key));
  }
});

Deno.test("the store's write builders carry the identities the committer would compute", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_kid_" });
  const store = await Store.open({ path: `${dir}/test.kv` });
  try {
    const job = {
      job_id: "job_1",
      session_id: "sess_1",
      principal: "alice",
      agent: "echo@1.0.0",
      created_ms: 17,
      status: "success",
      ended_at: new Date().toISOString(),
    } as JobRecord;
    const session = { session_id: "sess_1" } as SessionRecord;
    const writes = [
      ...store.jobWrites(job),
      ...store.jobWrites({ ...job, status: "running", ended_at: undefined }),
      store.sessionWrite(session, 1000),
      ...store.sessionLogWrites("sess_1", 3, "text", 1000),
      ...store.jobLogWrites("job_1", 4, "text"),
    ];
    for (const w of writes) {
      if (w.id !== undefined) equal(w.id, keyId(w.key));
      if (w.append !== undefined) equal(w.append, keyId(w.key.slice(0, -1)));
    }
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
