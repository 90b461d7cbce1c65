/** `arcp serve`'s management flags: `--admin` and `--drain-sec`, and `arcp status`'s URL. */
import { deepEqual, equal, rejects } from "assert";
import { readServeConfig, toRuntimeOptions } from "../../src/cli/serve_config.ts";
import { apiBase } from "../../src/cli/status.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("--admin is repeatable; a generated token's principal is the admin when none is named", async () => {
  const named = await readServeConfig(
    ["--token", "t=alice", "--admin", "alice", "--admin", "ops"],
    env({}),
  );
  deepEqual(toRuntimeOptions(named).adminPrincipals, ["alice", "ops"]);
  const tokenOnly = await readServeConfig(["--token", "t=alice"], env({}));
  deepEqual(toRuntimeOptions(tokenOnly).adminPrincipals, []);
  const generated = await readServeConfig([], env({}));
  equal(typeof generated.generatedToken, "string");
  deepEqual(toRuntimeOptions(generated).adminPrincipals, ["local"]);
});

Deno.test("--drain-sec takes 0 or more seconds and is unset by default", async () => {
  const drainSec = async (args: string[]) =>
    toRuntimeOptions(await readServeConfig(args, env({}))).drainSec;
  equal(await drainSec([]), undefined);
  equal(await drainSec(["--drain-sec", "0"]), 0);
  equal(await drainSec(["--drain-sec", "90"]), 90);
  await rejects(() => readServeConfig(["--drain-sec", "-1"], env({})), /--drain-sec/);
});

Deno.test("arcp status reaches the management API on the runtime's own host and port", () => {
  equal(apiBase("ws://127.0.0.1:7777/arcp"), "http://127.0.0.1:7777");
  equal(apiBase("wss://arcp.example/arcp"), "https://arcp.example");
  equal(apiBase("http://[::1]:8080"), "http://[::1]:8080");
});
