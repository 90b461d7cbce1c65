import { deepEqual, ok } from "assert";
import { newLiveJob } from "./live_job.ts";
import { jobRecord } from "../../testing/job_record.ts";

const record = (jobId: string) => jobRecord({ job_id: jobId });

Deno.test("every live job has the same fields in the same order, whatever it was made with", () => {
  const plain = newLiveJob({ record: record("job_1") });
  const full = newLiveJob({
    record: record("job_2"),
    input: { i: 1 },
    agentUrl: "file:///agents/echo.ts",
    sharing: { concurrency: 1, maxJobs: 100, idleSec: 60 },
    expiresMs: Date.now() + 60_000,
    parent: plain,
    policy: { requireModelLease: true },
  });
  deepEqual(Object.keys(full), Object.keys(plain));
  // The fields a job's path sets later are there from the start: set in place, never added.
  for (
    const later of [
      "run",
      "pendingRecord",
      "waitedForWorker",
      "runningDue",
      "terminated",
      "plainIds",
      "span",
      "stream",
      "settle",
      "ownerQueue",
      "ownerInStep",
      "cancelReason",
      "cancelDetails",
      "progress",
      "upstreamBudget",
    ]
  ) ok(Object.hasOwn(plain, later), later);
});
