/**
 * The `compile` task builds a standalone binary that serves real sessions.
 * `deno compile` needs a `denort` binary; it cannot be downloaded here, so
 * this test runs only when `DENORT_BIN` names one.
 */
import { equal, ok } from "assert";
import { ROOT } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";

const denort = Deno.env.get("DENORT_BIN");
const haveDenort = denort !== undefined &&
  await Deno.stat(denort).then((s) => s.isFile, () => false);
if (!haveDenort) {
  console.error(
    "compile_test: skipped: no denort binary (set DENORT_BIN to a denort for Deno 2.9.6 to run it)",
  );
}

Deno.test({
  name: "deno task compile builds a binary that serves a session and runs a job",
  ignore: !haveDenort,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "arcp_compile_" });
    try {
      const build = await new Deno.Command(Deno.execPath(), {
        args: ["task", "compile", `${dir}/arcp`],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      ok(build.success, new TextDecoder().decode(build.stderr));
      const server = new Deno.Command(`${dir}/arcp`, {
        args: [
          "serve",
          "--port",
          "0",
          "--kv",
          `${dir}/arcp.kv`,
          "--agents",
          `${ROOT}/agents`,
          "--token",
          "alice-token=alice",
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let out = "";
      const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
      while (!/ws:\/\/\S+\/arcp/.test(out)) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
      try {
        const url = out.match(/ws:\/\/\S+\/arcp/)![0];
        const c = await connect(url);
        const acc = await c.submit({ agent: "echo", input: { compiled: true } });
        const events = await c.untilTerminal(acc.job_id!);
        equal(events.at(-1)!.payload.result.echo.compiled, true);
        await c.close();
      } finally {
        server.kill("SIGTERM");
        await server.status;
        reader.releaseLock();
        await server.stdout.cancel().catch(() => {});
        await server.stderr.cancel();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
