/**
 * `arcp serve` as users run it: configuration from files and environment,
 * graceful shutdown on SIGTERM, and wss:// with a TLS certificate.
 */
import { equal, match, ok } from "assert";
import { ROOT, spawnServe, startChildServer } from "../../testing/server.ts";
import { connect, WsClient } from "../../testing/ws_client.ts";
import { haveOpenssl, testCertificates } from "../../testing/tls.ts";

/** `arcp serve` on a free port with the reference agents and exactly the given other flags. */
function serve(args: string[], env: Record<string, string> = {}) {
  return spawnServe(["--port", "0", "--agents", `${ROOT}/agents`, ...args], env);
}

Deno.test("tokens come from --tokens-file and ARCP_TOKENS, and none of them is printed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_serve_" });
  // The tokens file sits in its own folder, away from the KV folder (which is denied anyway).
  await Deno.mkdir(`${dir}/conf`);
  await Deno.writeTextFile(`${dir}/conf/tokens`, "# operators\nfile-token=carol\n\n");
  await Deno.writeTextFile(`${dir}/conf/other.txt`, "readable");
  const s = await serve(["--kv", `${dir}/kv/arcp.kv`, "--tokens-file", `${dir}/conf/tokens`], {
    ARCP_TOKENS: "env-token=dave",
  });
  try {
    for (const token of ["file-token", "env-token"]) {
      const c = new WsClient(s.url);
      equal((await c.hello(token)).type, "session.welcome", token);
      await c.close();
    }
    const bad = new WsClient(s.url);
    equal((await bad.hello("alice-token")).payload.code, "UNAUTHENTICATED");
    await bad.closed();
    // The tokens file is the runtime's own configuration: no lease reaches
    // it, and a lease whose grant would cover it is refused at submit.
    const c = new WsClient(s.url);
    await c.hello("file-token");
    const refused = await c.submit({
      agent: "reader",
      input: { path: `${dir}/conf/tokens` },
      lease_request: { "fs.read": [`${dir}/conf/*`] },
    });
    equal(refused.type, "job.error", JSON.stringify(refused.payload));
    equal(refused.payload.code, "PERMISSION_DENIED", JSON.stringify(refused.payload));
    match(refused.payload.message, /tokens/);
    const acc = await c.submit({
      agent: "reader",
      input: { path: `${dir}/conf/other.txt` },
      lease_request: { "fs.read": [`${dir}/conf/other.txt`] },
    });
    const end = (await c.untilTerminal(acc.job_id!)).at(-1)!;
    equal(end.type, "job.result", JSON.stringify(end.payload));
    await c.close();
  } finally {
    await s.stop();
    ok(
      !s.output().includes("file-token") && !s.output().includes("env-token"),
      "a token reached the logs",
    );
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with no token configured, a random one is generated and printed, and it works", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_serve_" });
  const s = await serve(["--kv", `${dir}/arcp.kv`]);
  try {
    const token = s.output().match(/token: ([0-9a-f]{48})/)?.[1];
    ok(token, `no token printed: ${s.output()}`);
    const c = new WsClient(s.url);
    equal((await c.hello(token)).type, "session.welcome");
    await c.close();
  } finally {
    await s.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM says session.bye to connected sessions, lets commits land and exits 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_serve_" });
  const child = await startChildServer(`${dir}/arcp.kv`);
  try {
    const c = await connect(child.url);
    const acc = await c.submit({ agent: "echo", input: "before shutdown" });
    await c.untilTerminal(acc.job_id!);
    const status = await child.stop("SIGTERM");
    const bye = await c.next((e) => e.type === "session.bye", 5000, "session.bye");
    match(bye.payload.reason, /shutting down/);
    equal(status.code, 0);
    await c.close();
    // The finished job is still there after a restart.
    const again = await startChildServer(`${dir}/arcp.kv`);
    try {
      const c2 = await connect(again.url);
      c2.send("session.list_jobs", {});
      const jobs = await c2.next((e) => e.type === "session.jobs");
      ok(
        jobs.payload.jobs.some((j: { job_id: string; status: string }) =>
          j.job_id === acc.job_id && j.status === "success"
        ),
      );
      await c2.close();
    } finally {
      await again.stop("SIGKILL");
    }
  } finally {
    await child.stop("SIGKILL").catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "with --tls-cert and --tls-key the runtime serves wss:// and a client trusting the cert completes a job",
  ignore: !haveOpenssl,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "arcp_tls_" });
    // A throwaway CA signs the server certificate; the client trusts the CA.
    await testCertificates(dir);
    const s = await serve([
      "--kv",
      `${dir}/arcp.kv`,
      "--token",
      "tls-token=erin",
      "--tls-cert",
      `${dir}/cert.pem`,
      "--tls-key",
      `${dir}/key.pem`,
    ]);
    try {
      match(s.url, /^wss:\/\//);
      // A separate client process trusts the self-signed certificate via --cert.
      const client = `
        const ws = new WebSocket(${JSON.stringify(s.url)});
        ws.onopen = () => ws.send(JSON.stringify({ arcp: "1.1", id: "h", type: "session.hello",
          payload: { client: { name: "t", version: "0" }, auth: { scheme: "bearer", token: "tls-token" } } }));
        ws.onmessage = (m) => { const e = JSON.parse(m.data); if (e.type === "session.welcome" || e.type === "session.error") { console.log(e.type); ws.close(); } };
        ws.onclose = () => Deno.exit(0);`;
      await Deno.writeTextFile(`${dir}/client.ts`, client);
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-net", "--cert", `${dir}/ca.pem`, `${dir}/client.ts`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      equal(
        new TextDecoder().decode(out.stdout).trim(),
        "session.welcome",
        new TextDecoder().decode(out.stderr),
      );
    } finally {
      await s.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("--sandbox-memory-mb, --sandbox-heap-mb and --warm-pool reach the sandbox processes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_serve_" });
  const child = await startChildServer(`${dir}/arcp.kv`, [
    "--agents",
    `${ROOT}/tests/fixtures/containment`,
    "--sandbox-memory-mb",
    "300",
    "--sandbox-heap-mb",
    "128",
    "--warm-pool",
    "0",
  ]);
  try {
    const c = await connect(child.url);
    const acc = await c.submit({ agent: "memory-bomb", input: { kind: "buffer" } });
    const end = (await c.untilTerminal(acc.job_id!, 30_000)).at(-1)!;
    equal(end.type, "job.error", JSON.stringify(end.payload));
    equal(end.payload.details?.cap, "memory", JSON.stringify(end.payload));
    match(end.payload.message, /memory ceiling is 300 MiB/);
    await c.close();
  } finally {
    await child.stop("SIGKILL").catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
