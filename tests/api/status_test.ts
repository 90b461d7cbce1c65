/**
 * `arcp status` against a real runtime: the summary from `/v1/runtime`
 * with `ARCP_TOKEN`, and one clear line when the token or the server is
 * wrong.
 */
import { equal, match } from "assert";
import { CLI_RUN, startServer } from "../../testing/server.ts";

async function status(env: Record<string, string>, args: string[] = []) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...CLI_RUN, "status", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("arcp status prints the runtime summary; a bad token or no server is one line and exit 1", async () => {
  await using s = await startServer({ adminPrincipals: ["bob"] });
  const ok = await status({ ARCP_URL: s.url, ARCP_TOKEN: "alice-token" });
  equal(ok.code, 0, ok.stderr);
  match(ok.stdout, /^arcp-deno-runtime 0\.1\.0, up /);
  match(ok.stdout, /state: +serving/);
  match(ok.stdout, /jobs: +0 live/);
  match(ok.stdout, /sandbox: +process/);

  const json = await status({ ARCP_URL: s.url, ARCP_TOKEN: "alice-token" }, ["--json"]);
  equal(JSON.parse(json.stdout).drain.state, "serving");

  const bad = await status({ ARCP_URL: s.url, ARCP_TOKEN: "wrong" });
  equal(bad.code, 1);
  equal(bad.stderr.trim(), "arcp status: UNAUTHENTICATED: the token is not valid");

  const port = new URL(s.http).port;
  await s.close();
  const gone = await status({ ARCP_URL: s.url, ARCP_TOKEN: "alice-token" });
  equal(gone.code, 1);
  equal(
    gone.stderr.trim(),
    `arcp status: no runtime answers at http://127.0.0.1:${port}; start one with \`arcp serve\` or pass --url`,
  );
  const none = await status({ ARCP_URL: s.url });
  equal(none.code, 2);
  match(none.stderr, /no token/);
});
