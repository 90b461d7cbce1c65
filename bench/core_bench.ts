/**
 * Per-iteration costs of the core paths over a real loopback socket: one
 * `echo` job submit→result (process vs worker sandbox) and opening a
 * session (hello→welcome, then close).
 *
 * The servers start when this module loads and stay up until the bench
 * process exits (their sandbox hosts exit with it); their temp dirs go then.
 *
 * @module
 */
import { BenchClient, removeOnUnload, startBenchServer } from "./_util.ts";

const processServer = await startBenchServer({ sandbox: "process" });
const workerServer = await startBenchServer({ sandbox: "worker" });
removeOnUnload(processServer);
removeOnUnload(workerServer);
const processClient = await BenchClient.connect(processServer.url);
const workerClient = await BenchClient.connect(workerServer.url);

Deno.bench({
  name: "echo submit→result, sandbox process",
  group: "echo job",
  baseline: true,
  n: 150,
  warmup: 15,
  async fn() {
    await processClient.run("echo", { hello: "world" });
  },
});

Deno.bench({
  name: "echo submit→result, sandbox worker",
  group: "echo job",
  n: 150,
  warmup: 15,
  async fn() {
    await workerClient.run("echo", { hello: "world" });
  },
});

Deno.bench({
  name: "open a session (hello→welcome) and close it",
  group: "session",
  n: 100,
  warmup: 10,
  async fn() {
    const c = await BenchClient.connect(processServer.url, { features: [] });
    await c.close();
  },
});
