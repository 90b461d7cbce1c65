/**
 * `--kv https://…` opens KV Connect (a self-hosted `denokv` or hosted Deno
 * KV). No such server can run here, so this checks the start fails with one
 * clear line, and without the token, when the server refuses the token or
 * cannot be reached.
 */
import { equal, match, ok } from "assert";
import { CLI_RUN, ROOT } from "../../testing/server.ts";

const TOKEN = "kv-secret-token-never-printed";

/** Runs `arcp serve --kv URL` to its exit. */
async function serveOn(url: string, env: Record<string, string>): Promise<[number, string]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      ...CLI_RUN,
      "serve",
      "--port",
      "0",
      "--kv",
      url,
      "--agents",
      `${ROOT}/agents`,
      "--token",
      "t=alice",
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return [out.code, text];
}

/** The lines that are not Deno's own warnings. */
function ownLines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("Warning"));
}

Deno.test("--kv with a KV Connect URL whose server refuses the token exits 1 with one line naming the token variable, never the token", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("unauthorized", { status: 401 }),
  );
  const [code, text] = await serveOn(`http://127.0.0.1:${server.addr.port}/`, {
    DENO_KV_ACCESS_TOKEN: TOKEN,
  });
  equal(code, 1, text);
  const lines = ownLines(text);
  equal(lines.length, 1, text);
  match(lines[0], /^arcp serve: cannot open KV Connect database at http:\/\/127\.0\.0\.1:\d+\//);
  match(lines[0], /access token was refused .*DENO_KV_ACCESS_TOKEN/);
  ok(!text.includes(TOKEN), "the token is never printed");
});

Deno.test("--kv with a KV Connect URL nothing listens on exits 1 with one line saying it cannot be reached", async () => {
  // A port that was free a moment ago: bound, then released.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const [code, text] = await serveOn(`http://127.0.0.1:${port}/`, { DENO_KV_ACCESS_TOKEN: TOKEN });
  equal(code, 1, text);
  const lines = ownLines(text);
  equal(lines.length, 1, text);
  match(lines[0], new RegExp(`at http://127\\.0\\.0\\.1:${port}/: the server cannot be reached$`));
  ok(!text.includes(TOKEN));
});
