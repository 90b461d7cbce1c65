import { deepEqual, equal, match } from "assert";
import { stderrLogger } from "./logger.ts";

function capture(options: Parameters<typeof stderrLogger>[0]) {
  const lines: string[] = [];
  return { log: stderrLogger({ ...options, write: (l) => lines.push(l) }), lines };
}

Deno.test("levels below the configured one are dropped", () => {
  const { log, lines } = capture({ level: "warn" });
  log.debug?.("d");
  log.info("i");
  log.warn("w");
  log.error("e");
  deepEqual(lines.map((l) => l.split(" ")[1]), ["WARN", "ERROR"]);
  const debug = capture({ level: "debug" });
  debug.log.debug?.("d");
  match(debug.lines[0], / DEBUG d$/);
});

Deno.test("json lines carry time, level and message, and fields cannot override them", () => {
  const { log, lines } = capture({ format: "json" });
  log.info("job ended", { job_id: "job_1", level: "forged", msg: "forged" });
  const line = JSON.parse(lines[0]);
  equal(line.level, "info");
  equal(line.msg, "job ended");
  equal(line.job_id, "job_1");
  match(line.time, /^\d{4}-/);
});

Deno.test("fields named like secrets are redacted at any depth; ids are not", () => {
  const { log, lines } = capture({ format: "json" });
  log.warn("x", {
    token: "t1",
    resume_token: "rt_2",
    nested: [{ api_key: "k3", credential_id: "cred_4" }],
    admin_key: "k5",
  });
  const line = JSON.parse(lines[0]);
  equal(line.token, "[redacted]");
  equal(line.resume_token, "[redacted]");
  equal(line.nested[0].api_key, "[redacted]");
  equal(line.nested[0].credential_id, "cred_4");
  equal(line.admin_key, "[redacted]");
});
