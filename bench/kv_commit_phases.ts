/**
 * Where a job's time goes between its submit and its result, from the
 * kernel's side, with the KV commit split into its phases: the wake-up of
 * KV's writer thread (`sw-*`), SQLite's work before its first write, the
 * write-ahead log's page writes, the `fsync`, the hand-back to the main
 * thread and the send to the client. Runs `arcp serve` of a checkout, warms
 * it up, then runs jobs one after another with a gap between them (50 ms:
 * figure 11b's pacing; 0: back to back) while `perf record` takes syscall
 * and scheduler tracepoints of the server process (far lighter than strace,
 * which adds ~20 µs to each of a commit's ~45 `pwrite64`s).
 *
 * Needs `perf` and the right to trace another process (root, or
 * `perf_event_paranoid` ≤ 1). `--kv-dir` puts the KV file elsewhere (a tmpfs
 * mount, to see the commit without the disk; not /dev/shm, which Deno's
 * `--allow-write` does not cover). Reports medians (p25–p75); asserts
 * nothing.
 *
 * ```sh
 * deno run -A bench/kv_commit_phases.ts --gap-ms 50 --jobs 80
 * deno run -A bench/kv_commit_phases.ts --gap-ms 0 --jobs 300 --agent echo-fresh
 * ```
 *
 * @module
 */
import { parseArgs } from "parse-args";
import { BENCH_TOKENS, BenchClient, fmt, ROOT, spawnBenchServe, stats } from "./_util.ts";
import { FIGURE11_SERVE_FLAGS } from "./sandbox_figures.ts";
import { type ChildServer, spawnServe } from "../testing/server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    agent: { type: "string" },
    "gap-ms": { type: "string" },
    jobs: { type: "string" },
    root: { type: "string" },
    "kv-dir": { type: "string" },
  },
});
const agent = values.agent ?? "echo-reused";
const gapMs = Number(values["gap-ms"] ?? 50);
const jobs = Number(values.jobs ?? 80);
const root = values.root ?? ROOT;

/** The tracepoints: the syscalls of a job's hops and of a commit, and thread wake-ups. */
const SYSCALLS = [
  "recvfrom",
  "sendto",
  "write",
  "epoll_wait",
  "pwrite64",
  "fsync",
  "fdatasync",
];
const EVENTS = [
  ...SYSCALLS.flatMap((s) => [`syscalls:sys_enter_${s}`, `syscalls:sys_exit_${s}`]),
  "sched:sched_wakeup",
].join(",");

/** One traced event. */
interface Event {
  ms: number;
  tid: number;
  name: string;
  args: string;
}

/** A job's hops, in ms since the perf clock's origin; absent when not seen. */
interface Hops {
  submit: number;
  start?: number;
  back?: number;
  kvWake?: number;
  kvRun?: number;
  firstWrite?: number;
  writes: number;
  fsyncs: number;
  fsyncIn?: number;
  fsyncOut?: number;
  notify?: number;
  send?: number;
}

/** The server's socket fds by kind: TCP (clients) and Unix (the sandbox's control sockets). */
function socketFds(pid: number): { tcp: Set<number>; unix: Set<number> } {
  const unixInodes = new Set(
    Deno.readTextFileSync("/proc/net/unix").split("\n").slice(1).map((l) => l.split(/\s+/)[6]),
  );
  const tcp = new Set<number>();
  const unix = new Set<number>();
  for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
    let link: string;
    try {
      link = Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`);
    } catch {
      continue;
    }
    const m = link.match(/^socket:\[(\d+)\]$/);
    if (!m) continue;
    (unixInodes.has(m[1]) ? unix : tcp).add(Number(e.name));
  }
  return { tcp, unix };
}

/** The id of KV's writer thread (`sw-*`) of a process. */
function writerThread(pid: number): number {
  for (const e of Deno.readDirSync(`/proc/${pid}/task`)) {
    const comm = Deno.readTextFileSync(`/proc/${pid}/task/${e.name}/comm`);
    if (comm.startsWith("sw-")) return Number(e.name);
  }
  throw new Error("no KV writer thread (sw-*) in the server");
}

/** Parses `perf script` output. */
function parse(text: string): Event[] {
  const events: Event[] = [];
  const line = /^\s*.+?\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+(\S+):\s*(.*)$/;
  for (const l of text.split("\n")) {
    const m = l.match(line);
    if (m) events.push({ tid: Number(m[1]), ms: Number(m[2]) * 1000, name: m[3], args: m[4] });
  }
  return events;
}

const fdOf = (args: string): number => parseInt(args.match(/fd: (0x[0-9a-f]+)/)?.[1] ?? "-1");

/**
 * Follows each job from the client's submit (read on a TCP socket) through
 * the start sent to and the result read from a control socket, the commit
 * on the writer thread, to the next send on a TCP socket.
 */
function hops(
  events: Event[],
  main: number,
  writer: number,
  fds: { tcp: Set<number>; unix: Set<number> },
): Hops[] {
  const all: Hops[] = [];
  let job: Hops | undefined;
  const on = (e: Event, name: string) => e.name === `syscalls:sys_${name}`;
  for (const e of events) {
    if (e.tid === main && on(e, "enter_recvfrom") && fds.tcp.has(fdOf(e.args))) {
      job = { submit: e.ms, writes: 0, fsyncs: 0 };
      all.push(job);
      continue;
    }
    if (!job || job.send !== undefined) continue;
    if (e.tid === main && job.back === undefined) {
      if (on(e, "enter_sendto") && fds.unix.has(fdOf(e.args))) job.start ??= e.ms;
      else if (on(e, "enter_recvfrom") && fds.unix.has(fdOf(e.args)) && job.start) job.back = e.ms;
    } else if (job.back !== undefined && job.notify === undefined) {
      if (e.name === "sched:sched_wakeup" && e.args.includes(`pid=${writer} `)) job.kvWake ??= e.ms;
      else if (e.tid !== writer || job.kvWake === undefined) continue;
      else if (on(e, "exit_epoll_wait")) job.kvRun ??= e.ms;
      else if (on(e, "enter_pwrite64") && job.kvRun !== undefined) {
        job.firstWrite ??= e.ms;
        job.writes++;
      } else if (on(e, "enter_fsync") || on(e, "enter_fdatasync")) {
        job.fsyncs++;
        job.fsyncIn ??= e.ms;
      } else if (on(e, "exit_fsync") || on(e, "exit_fdatasync")) job.fsyncOut ??= e.ms;
      else if (on(e, "enter_write") && job.fsyncOut !== undefined) job.notify = e.ms;
    } else if (job.notify !== undefined && e.tid === main && on(e, "enter_sendto")) {
      if (fds.tcp.has(fdOf(e.args))) job.send = e.ms;
    }
  }
  return all.filter((j) => j.send !== undefined && j.firstWrite !== undefined);
}

let server: ChildServer;
if (values["kv-dir"]) {
  const dir = await Deno.makeTempDir({ dir: values["kv-dir"], prefix: "arcp_phases_" });
  const tokens = Object.entries(BENCH_TOKENS).flatMap(([t, p]) => ["--token", `${t}=${p}`]);
  server = await spawnServe(
    ["--port", "0", "--kv", `${dir}/arcp.kv`, ...tokens, ...FIGURE11_SERVE_FLAGS],
    {},
    undefined,
    root,
  );
  const stop = server.stop;
  server.stop = async (signal) => {
    const status = await stop(signal);
    await Deno.remove(dir, { recursive: true });
    return status;
  };
} else {
  server = await spawnBenchServe([...FIGURE11_SERVE_FLAGS], root);
}
const trace = await Deno.makeTempFile({ prefix: "arcp_phases_", suffix: ".perf" });
try {
  const pid = server.process.pid;
  const client = await BenchClient.connect(server.url);
  for (let i = 0; i < 50; i++) await client.run(agent, { i });
  const writer = writerThread(pid);
  const fds = socketFds(pid);
  const perf = new Deno.Command("perf", {
    args: ["record", "-q", "-e", EVENTS, "-o", trace, "-p", String(pid)],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // perf attaches to each thread after it starts; give it that time.
  await new Promise((r) => setTimeout(r, 1000));
  const latency: number[] = [];
  for (let i = 0; i < jobs; i++) {
    const run = await client.run(agent, { i });
    latency.push(run.endedAt! - run.submittedAt);
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
  }
  perf.kill("SIGINT");
  // perf ends on SIGINT with a failing status, the trace written.
  const recorded = await perf.output();
  if ((await Deno.stat(trace)).size === 0) {
    throw new Error(`perf recorded nothing: ${new TextDecoder().decode(recorded.stderr)}`);
  }
  await client.close();
  const script = await new Deno.Command("perf", {
    args: ["script", "-i", trace],
    stdout: "piped",
    stderr: "null",
  }).output();
  const traced = hops(parse(new TextDecoder().decode(script.stdout)), pid, writer, fds);
  const plain = traced.filter((j) => j.fsyncs === 1);
  const checkpointed = traced.filter((j) => j.fsyncs > 1);
  const row = (label: string, of: (j: Hops) => number | undefined, among = plain) => {
    const v = among.map(of).filter((x): x is number => x !== undefined && x >= 0);
    const s = [...v].sort((a, b) => a - b);
    const q = (p: number) => fmt(s[Math.floor((s.length - 1) * p)] ?? NaN, 3);
    console.log(`  ${label.padEnd(40)} ${q(0.5)} ms  (${q(0.25)}–${q(0.75)})`);
  };
  const c = stats(latency);
  console.log(
    `${agent}, ${jobs} jobs ${gapMs > 0 ? `${gapMs} ms apart` : "back to back"}, KV in ` +
      `${values["kv-dir"] ?? "the temp dir"}; client submit→result p50 ${fmt(c.p50, 2)} ms`,
  );
  console.log(`server side, ${plain.length} jobs whose commit took one fsync:`);
  row("submit read → start sent", (j) => j.start! - j.submit);
  row("start sent → result read (sandbox)", (j) => j.back! - j.start!);
  row("result read → KV writer woken", (j) => j.kvWake! - j.back!);
  row("KV writer woken → running", (j) => j.kvRun! - j.kvWake!);
  row("running → first WAL write (SQLite)", (j) => j.firstWrite! - j.kvRun!);
  row("WAL writes", (j) => j.fsyncIn! - j.firstWrite!);
  row("fsync", (j) => j.fsyncOut! - j.fsyncIn!);
  row("fsync → main thread told", (j) => j.notify! - j.fsyncOut!);
  row("main thread told → result sent", (j) => j.send! - j.notify!);
  row("the commit (woken → told)", (j) => j.notify! - j.kvWake!);
  row("submit read → result sent", (j) => j.send! - j.submit);
  console.log(
    `  WAL frames a commit (2 writes each): ${fmt(stats(plain.map((j) => j.writes / 2)).p50, 1)}`,
  );
  if (checkpointed.length) {
    console.log(`${checkpointed.length} commits ran a WAL checkpoint (more than one fsync):`);
    row("the commit (woken → told)", (j) => j.notify! - j.kvWake!, checkpointed);
  }
} finally {
  await server.stop();
  await Deno.remove(trace).catch(() => {});
}
