import { equal } from "assert";
import { ArcpError } from "../protocol/errors.ts";
import { sandboxFailureOf } from "./operator_events.ts";

Deno.test("a job's error names a sandbox failure only when the sandbox failed it", () => {
  equal(
    sandboxFailureOf(new ArcpError("HEARTBEAT_LOST", "agent missed 5 liveness beats")),
    "heartbeat_lost",
  );
  equal(
    sandboxFailureOf(
      new ArcpError("INTERNAL_ERROR", "agent failed: sandbox process exited (code 1)"),
    ),
    "host_crash",
  );
  equal(
    sandboxFailureOf(new ArcpError("INTERNAL_ERROR", "agent exhausted its heap", { cap: "heap" })),
    "host_crash",
  );
  // A cap the runtime enforced by killing the process is not a crash.
  equal(
    sandboxFailureOf(new ArcpError("INTERNAL_ERROR", "memory ceiling", { cap: "memory" })),
    undefined,
  );
  equal(sandboxFailureOf(new ArcpError("INTERNAL_ERROR", "agent failed: boom")), undefined);
  equal(sandboxFailureOf(new ArcpError("TIMEOUT", "job exceeded max_runtime_sec")), undefined);
  equal(
    sandboxFailureOf(new ArcpError("PERMISSION_DENIED", "sandbox process exited (code 1)")),
    undefined,
  );
});
