import { deepEqual, equal, match, ok } from "assert";
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

/** Runs a script with the default logger in a child process; returns its stderr lines. */
async function stderrOf(script: string): Promise<string[]> {
  const logger = new URL("./logger.ts", import.meta.url).href;
  const { stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { stderrLogger } from "${logger}"; const log = stderrLogger(); ${script}`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(stderr).split("\n").filter((l) => l.length > 0);
}

Deno.test("stderr: batched info lines keep their order around a warning and are written at exit", async () => {
  const lines = await stderrOf(`log.info("first"); log.warn("second"); log.info("third");`);
  deepEqual(lines.map((l) => l.split(" ").slice(1).join(" ")), [
    "INFO first",
    "WARN second",
    "INFO third",
  ]);
});

Deno.test("stderr: an info line waiting in the batch is written before an uncaught error ends the process", async () => {
  const lines = await stderrOf(
    `log.info("before the crash"); setTimeout(() => { throw new Error("boom"); }, 0);`,
  );
  match(lines[0], / INFO before the crash$/);
  ok(lines.some((l) => l.includes("boom")));
});

Deno.test("a line's time is the current time as toISOString spells it", () => {
  const { log, lines } = capture({ format: "json" });
  const before = Date.now();
  for (let i = 0; i < 50; i++) log.info("tick", { i });
  const after = Date.now();
  for (const l of lines) {
    const { time } = JSON.parse(l);
    const ms = Date.parse(time);
    equal(new Date(ms).toISOString(), time);
    ok(ms >= before && ms <= after, `${time} between ${before} and ${after}`);
  }
});

Deno.test("stderr: a reader that stops reading holds back the log, not the process; what it missed is counted", async () => {
  const logger = new URL("./logger.ts", import.meta.url).href;
  const total = 60_000;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { stderrLogger } from "${logger}";
       const log = stderrLogger();
       for (let i = 0; i < ${total}; i++) log.info("line " + i + " " + "x".repeat(80));
       Deno.stdout.writeSync(new TextEncoder().encode("logged\\n"));`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Nobody reads stderr until the child says it got past logging: a blocking write to the
  // full pipe would stop it there. The guard only ends a hung child; it measures nothing.
  const guard = setTimeout(() => child.kill("SIGKILL"), 120_000);
  let stdout = "";
  const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  while (!stdout.includes("\n")) {
    const { value, done } = await out.read();
    if (done) break;
    stdout += value;
  }
  equal(stdout, "logged\n", "the child was killed before it got past logging: stderr blocked it");
  // Its pending write keeps the child alive until stderr is read.
  const [stderr, status] = await Promise.all([new Response(child.stderr).text(), child.status]);
  await out.cancel();
  clearTimeout(guard);
  ok(status.success);
  const lines = stderr.split("\n").filter((l) => l.length > 0);
  const notice = lines.pop()!;
  match(notice, / WARN log lines dropped: stderr was not taking them \{"dropped":\d+\}$/);
  ok(lines.length > 0 && lines.length < total, `${lines.length} of ${total} kept`);
  lines.forEach((l, i) => match(l, new RegExp(` INFO line ${i} x+$`)));
  equal(JSON.parse(notice.slice(notice.indexOf("{"))).dropped, total - lines.length);
});
