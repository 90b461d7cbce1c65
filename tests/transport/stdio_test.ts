import { deepEqual, equal, match, ok } from "assert";
import { CLI_RUN, ROOT } from "../../testing/server.ts";

/** `arcp serve --stdio` as a child process, speaking newline-delimited JSON. */
class StdioServer implements AsyncDisposable {
  readonly process: Deno.ChildProcess;
  readonly lines: string[] = [];
  stderr = "";
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #stdoutDone: Promise<void>;
  #stderrDone: Promise<void>;
  #taken = 0;
  #wake: Array<() => void> = [];

  constructor(args: string[]) {
    const proc = new Deno.Command(Deno.execPath(), {
      args: [
        ...CLI_RUN,
        "serve",
        "--stdio",
        ...args,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.process = proc;
    this.#writer = proc.stdin.getWriter();
    this.#stdoutDone = (async () => {
      let buf = "";
      for await (const chunk of proc.stdout.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          this.lines.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
        this.#notify();
      }
      if (buf) this.lines.push(buf);
      this.#notify();
    })();
    this.#stderrDone = (async () => {
      for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) {
        this.stderr += chunk;
        this.#notify();
      }
    })();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }

  async #until(done: () => boolean, what: string, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for ${what}; stderr:\n${this.stderr}`);
      }
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.min(left, 200));
        this.#wake.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  /** Waits for stderr to match. */
  async stderrMatch(re: RegExp): Promise<RegExpMatchArray> {
    await this.#until(() => re.test(this.stderr), `stderr ${re}`);
    return this.stderr.match(re)!;
  }

  /** Writes one line. */
  async writeLine(value: unknown): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(value) + "\n"));
  }

  /** Takes stdout lines, parsed, until one matches. */
  // deno-lint-ignore no-explicit-any
  async next(pred: (env: any) => boolean, what: string): Promise<any> {
    while (true) {
      await this.#until(() => this.lines.length > this.#taken, what);
      const env = JSON.parse(this.lines[this.#taken++]);
      if (pred(env)) return env;
    }
  }

  /** Closes stdin and waits for the exit. */
  async finish(): Promise<Deno.CommandStatus> {
    await this.#writer.close().catch(() => {});
    const status = await this.process.status;
    await Promise.all([this.#stdoutDone, this.#stderrDone]);
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.process.kill("SIGKILL");
    } catch {
      // already exited
    }
    await this.finish();
  }
}

Deno.test("serve --stdio speaks newline-delimited JSON on stdout and keeps human lines on stderr", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_stdio_" });
  try {
    // No --token: the runtime generates one and must print it on stderr, not stdout.
    await using srv = new StdioServer(["--kv", `${dir}/arcp.kv`, "--agents", `${ROOT}/agents`]);
    const token = (await srv.stderrMatch(/token: ([0-9a-f]+) /))[1];

    await srv.writeLine({
      arcp: "1.1",
      id: "h1",
      type: "session.hello",
      payload: {
        client: { name: "stdio-test", version: "0" },
        auth: { scheme: "bearer", token },
        capabilities: { encodings: ["json"], features: ["list_jobs"] },
      },
    });
    const welcome = await srv.next((e) => e.type !== undefined, "welcome");
    equal(welcome.type, "session.welcome", JSON.stringify(welcome));
    equal(welcome.arcp, "1.1");
    match(welcome.session_id, /^sess_/);
    deepEqual(welcome.payload.capabilities.features, ["list_jobs"]);

    const trace = "0af7651916cd43dd8448eb211c80319c";
    await srv.writeLine({
      arcp: "1.1",
      id: "s1",
      type: "job.submit",
      session_id: welcome.session_id,
      trace_id: trace,
      payload: { agent: "echo", input: { via: "stdio" } },
    });
    const accepted = await srv.next((e) => e.type === "job.accepted", "job.accepted");
    equal(accepted.trace_id, trace);
    const result = await srv.next(
      (e) => e.type === "job.result" || e.type === "job.error",
      "job.result",
    );
    equal(result.type, "job.result", JSON.stringify(result));
    equal(result.job_id, accepted.job_id);
    deepEqual(result.payload.result, { echo: { via: "stdio" }, version: "2.0.0" });

    const status = await srv.finish();
    equal(status.code, 0);
    ok(srv.lines.length >= 4);
    for (const line of srv.lines) {
      const env = JSON.parse(line);
      equal(env.arcp, "1.1", line);
      equal(typeof env.type, "string", line);
    }
    ok(!srv.lines.some((l) => l.includes(token)), "the token leaked onto stdout");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve --stdio answers a bad line with session.error and carries on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_stdio_" });
  try {
    await using srv = new StdioServer([
      "--kv",
      `${dir}/arcp.kv`,
      "--agents",
      `${ROOT}/agents`,
      "--token",
      "stdio-token=carol",
    ]);
    await srv.writeLine({
      arcp: "1.1",
      id: "h1",
      type: "session.hello",
      payload: {
        client: { name: "stdio-test", version: "0" },
        auth: { scheme: "bearer", token: "stdio-token" },
      },
    });
    const welcome = await srv.next((e) => e.type === "session.welcome", "welcome");
    await srv.writeLine("just a string");
    const err = await srv.next((e) => e.type === "session.error", "session.error");
    equal(err.payload.code, "INVALID_REQUEST");
    equal(err.session_id, welcome.session_id);
    await srv.writeLine({
      arcp: "1.1",
      id: "p1",
      type: "session.ping",
      session_id: welcome.session_id,
      payload: { nonce: "n1", sent_at: new Date().toISOString() },
    });
    const pong = await srv.next((e) => e.type === "session.pong", "pong");
    equal(pong.payload.ping_nonce, "n1");
    equal((await srv.finish()).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
