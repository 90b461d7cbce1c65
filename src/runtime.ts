/**
 * The composition root: opens the store, loads the agent inventory, wires
 * sessions, jobs and the sandbox together, and exposes a web-standard
 * `fetch` handler (WebSocket at `/arcp`, `GET /healthz`, `/readyz`,
 * `/metrics`, the management API under `/v1`), a stdio server and the
 * drain.
 *
 * @module
 */
import { RUNTIME_FEATURES } from "./protocol/features.ts";
import type { AgentInventoryEntry } from "./protocol/messages.ts";
import {
  DEFAULT_JOB_LIMITS,
  type JobJournal,
  type JobLimits,
  JobManager,
  type NodeInfo,
  type NodeOptions,
} from "./jobs/job_manager.ts";
import { DEFAULT_DRAIN_SEC, Drain, type DrainStatus } from "./jobs/drain.ts";
import { sandboxFailureOf } from "./jobs/operator_events.ts";
import { ArcpError } from "./protocol/errors.ts";
import { type Deployment, managementApi, type SandboxView } from "./api/mod.ts";
import { AgentRegistry } from "./sandbox/registry.ts";
import { prepareDescriber } from "./sandbox/describer.ts";
import type { Sandbox } from "./sandbox/sandbox.ts";
import { SupervisedSandbox, type SupervisorOptions } from "./sandbox/supervisor.ts";
import { HostLauncher, type SandboxStats } from "./sandbox/host_launcher.ts";
import { LocalLauncher } from "./sandbox/local_launcher.ts";
import { runtimeProtectedPaths } from "./sandbox/protected_paths.ts";
import type { Listener } from "./sandbox/protected_listeners.ts";
import type { Protection } from "./sandbox/protection.ts";
import type { ToolHandler } from "./jobs/tools.ts";
import {
  type CredentialProvisioner,
  CredentialService,
  type CredentialServiceOptions,
} from "./credentials/credentials.ts";
import {
  authenticateBearer,
  type Authenticator,
  HelloThrottle,
  type Identity,
  isAnonymous,
} from "./session/auth.ts";
import { type AuthOptions, buildAuth } from "./session/authenticator.ts";
import { SessionEvents } from "./session/operator_events.ts";
import { Connection } from "./session/connection.ts";
import type { ConnectionContext } from "./session/context.ts";
import {
  DEFAULT_HEARTBEAT_SEC,
  DEFAULT_SESSION_LIMITS,
  DEFAULT_SESSION_POLICY,
  type SessionLimits,
  SessionRegistry,
} from "./session/registry.ts";
import { isRemoteKv, Store } from "./store/store.ts";
import { checkStoreFile } from "./store/kv_file.ts";
export { StoreDamageError } from "./store/damage.ts";
export { StartRefusedError } from "./store/nodes.ts";
export type { NodeInfo, NodeOptions } from "./jobs/job_manager.ts";
export { examineStore, type StoreProblem, type StoreReport } from "./store/doctor.ts";
import { describeCause, storageHeld } from "./store/storage_health.ts";
import { DEFAULT_SWEEP, Sweeper } from "./store/sweeper.ts";
import { serveLines } from "./transport/stdio.ts";
export {
  DEFAULT_GATE_LIMITS,
  type GatedServer,
  type GateLimits,
  gateLimitsFor,
  serveGated,
} from "./transport/gate.ts";
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_SOCKET_BYTES } from "./transport/transport.ts";
import { type Logger, stderrLogger } from "./logger.ts";
import { Metrics } from "./metrics.ts";
import { httpHandler } from "./http.ts";
export { HEALTH_PATHS, WEBSOCKET_PATH } from "./http.ts";

/**
 * Checks authentication options as {@linkcode createRuntime} would, so a
 * command line can refuse a bad one before starting anything.
 *
 * @param auth the options
 * @throws {TypeError} naming what is wrong (a short secret, an algorithm without its key source…)
 */
export function checkAuthOptions(auth: AuthOptions): void {
  buildAuth(auth);
}

/** The runtime's name and version, as the welcome reports them. */
export const RUNTIME_INFO = { name: "arcp-deno-runtime", version: "0.1.0" } as const;

/** How long one agent module may take to describe itself at start (ms). */
const DEFAULT_DESCRIBE_TIMEOUT_MS = 10_000;

/** Heap cap of a describer process (MiB): describing needs little; a heap bomb fails fast. */
const DEFAULT_DESCRIBE_HEAP_MB = 256;

/** Options of {@linkcode createRuntime}. */
export interface RuntimeOptions {
  /**
   * KV file path, `:memory:`, or a KV Connect URL (`https://…`, a
   * self-hosted `denokv` or hosted Deno KV; the token comes from
   * `DENO_KV_ACCESS_TOKEN`). Several runtimes may share one: each is a node.
   */
  kvPath: string;
  /**
   * This runtime as a node among those sharing the KV: its id (default
   * generated), the URL clients reach it at (shown in node listings), and
   * how long its lease lasts and how often it is renewed.
   */
  node?: NodeOptions;
  /** Folder of agent modules. */
  agentsDir: string;
  /** Bearer token → principal (added to `auth.tokens`). */
  tokens?: Record<string, string>;
  /**
   * Who may connect beyond `tokens`: JWTs from an identity provider
   * (`auth.jwt`), the anonymous scheme (`auth.anonymous`, off by default),
   * authenticators of your own. Static tokens are tried first, then JWT.
   */
  auth?: AuthOptions;
  /**
   * Principals that see every job and session through the management API
   * (`/v1`) and alone may drain the runtime or read its event log and
   * diagnostics; every other principal sees its own.
   */
  adminPrincipals?: string[];
  /** How long running jobs get to finish when a drain names no deadline (s); default 30. */
  drainSec?: number;
  /** How the runtime is reached (listening host, TLS, a generated token), for the diagnostics. */
  deployment?: Deployment;
  /** Largest inbound frame (bytes); default 1 MiB. */
  maxFrameBytes?: number;
  /** Session limits. */
  sessions?: Partial<SessionLimits>;
  /** Job limits. */
  jobs?: Partial<JobLimits>;
  /** How long session logs stay in KV (ms); default 24 h, never less than the resume window. */
  logTtlMs?: number;
  /** Heartbeat interval in seconds when a client negotiates `heartbeat`; default 30. */
  heartbeatSec?: number;
  /** Unacknowledged envelopes after which jobs feeding a session get `back_pressure`; default 1000. */
  backPressureLag?: number;
  /** Socket buffer above which delivery pauses (bytes); default 1 MiB. */
  maxBufferedBytes?: number;
  /**
   * Bytes queued to one socket past which it is dropped at once (its
   * session stays resumable); default 8 MiB. Behind `Deno.serve` alone,
   * without {@linkcode serveGated}, the drop is a close that waits behind
   * the 64 KiB the socket holds.
   */
  maxSocketBytes?: number;
  /** How long a socket may stay stuck before it is closed (ms); default 30 s. */
  stallTimeoutMs?: number;
  /** Where operator messages go; default stderr. */
  logger?: Logger;
  /**
   * Told about each agent module skipped at start (path, one-line reason)
   * instead of a warning in the log; `arcp serve` lists them in its summary.
   */
  onSkippedAgent?: (path: string, reason: string) => void;
  /**
   * Where agents run. `"process"` (default): each job's worker lives in a
   * sandbox process of its own with a heap cap, killed when the job ends, so
   * an agent that exhausts memory or leaves threads behind ends only its own
   * job. `"worker"`: workers in this process
   * (faster to start; an out-of-memory agent kills the runtime). Or a
   * {@linkcode Sandbox} of your own.
   */
  sandbox?: "process" | "worker" | Sandbox;
  /**
   * Agent liveness: workers beat every `beatIntervalMs` (default 1000) and a
   * job whose worker misses `missedBeats` (default 5) in a row ends with
   * `HEARTBEAT_LOST`; event rate caps (`eventRate`, `eventBurst`) and the
   * symlink scan bound (`scanLimit`) live here too.
   */
  liveness?: SupervisorOptions;
  /**
   * Describing agents at start: each module is loaded in its own short-lived
   * deno process, killed after `timeoutMs` (default 10 s) or when it passes
   * `heapMb` (default 256 MiB); such a module is skipped with a warning.
   */
  describe?: { timeoutMs?: number; heapMb?: number };
  /** Heap cap of each sandbox process, MiB (default 512). */
  hostHeapMb?: number;
  /**
   * Memory ceiling of each sandbox process (resident set, ArrayBuffers and
   * wasm included), MiB; a job whose process goes over it ends with
   * `INTERNAL_ERROR` (`details.cap: "memory"`). Default: an eighth of the
   * machine's memory, clamped to 256 MiB – 4 GiB, and at least the heap cap
   * plus 128 MiB.
   */
  memoryMb?: number;
  /**
   * Idle sandbox processes kept started and connected, so a job does not wait
   * for a process to start (default 2; 0 starts one per job on demand). With
   * `sandbox: "worker"`, 0 starts every worker on demand, and any other value
   * keeps workers started ahead for recent demand, up to `warmMax`.
   */
  warmPool?: number;
  /**
   * Most sandbox processes kept ready at once, idle or with their agent's
   * worker already started for the keys recent jobs used (each holds ~50
   * MiB). Default: as many as a sixteenth of the machine's memory holds,
   * 8 – 32. With `sandbox: "worker"`, the most workers started ahead
   * (default: a sixteenth of the memory at 16 MiB each, 8 – 64).
   */
  warmMax?: number;
  /**
   * Jobs one sandbox process serves one after another, each in a fresh
   * worker, all of one principal, agent and permission set, each after a
   * clean result (default 100; 1 gives every job a process of its own).
   */
  jobsPerProcess?: number;
  /**
   * How long a job may wait for a sandbox worker when the sandbox is at
   * capacity before it ends with a retryable `INTERNAL_ERROR`
   * (`details.cap: "sandbox_busy"`), ms (default 10,000).
   */
  sandboxWaitMs?: number;
  /**
   * The longest a fresh job may be expected to wait for a sandbox worker
   * when it is submitted, ms (default 250); past it the submit is refused
   * with a retryable `INTERNAL_ERROR` (`details.cap: "sandbox_busy"`). Once
   * the queue has not emptied for a quarter of it, the limit is a tenth of it.
   */
  sandboxQueueMs?: number;
  /** Let agents in sandbox host processes import npm packages already in Deno's cache (default false). */
  allowNpm?: boolean;
  /**
   * More paths no lease may read or write, e.g. the tokens file and TLS key.
   * The KV file's folder, `/proc`, Deno's cache (`DENO_DIR`) always are;
   * the runtime's modules, the agents folder, the deno executable and its
   * configuration are never writable.
   */
  denyPaths?: string[];
  /**
   * Where this runtime's `fetch` is served (`Deno.serve`'s hostname and
   * port): no lease may reach them and sandbox hosts are denied them. The
   * runtime cannot learn this itself, so listen first (port 0 included) and
   * pass what `onListen` reported; `arcp serve` does. Without it agents are
   * kept off nothing but what their leases name.
   */
  listeners?: Listener[];
  /** Host-side tools agents call with `ctx.tool` (built in: `search`). */
  tools?: Record<string, ToolHandler>;
  /**
   * Provisioned credentials: the provisioner that issues them. The feature
   * is advertised only over TLS, or to loopback peers when
   * `allowInsecure` is set (development).
   */
  credentials?:
    & { provisioner: CredentialProvisioner; allowInsecure?: boolean }
    & CredentialServiceOptions;
  /**
   * Time between retention sweeps (ms); default 60 s. Each sweep deletes
   * sessions (record and log) whose resume window has passed, idempotency
   * keys past their TTL, job histories past `jobHistoryTtlMs`, finished jobs
   * past `jobRetentionMs` and audit entries past `auditRetentionMs`. 0 turns
   * sweeping off.
   */
  sweepIntervalMs?: number;
  /**
   * How long a finished job's event history is kept for subscribers after it
   * ended (ms); default 7 days, never longer than `jobRetentionMs`; 0 keeps
   * histories as long as their jobs.
   */
  jobHistoryTtlMs?: number;
  /**
   * How long a finished job is kept after it ended (ms): its record, its
   * `session.list_jobs` entries and the idempotency key naming it; default
   * 7 days; 0 keeps finished jobs forever. Live jobs are never deleted, and
   * sessions' logs follow their own rules (resume window, acks).
   */
  jobRetentionMs?: number;
  /** How long subscription audit entries are kept (ms); default 30 days; 0 keeps them forever. */
  auditRetentionMs?: number;
  /**
   * Check the KV file's structure before anything else starts (SQLite's
   * `quick_check`; it reads the whole file, about 0.12 s per 100 MB); default
   * true. A damaged or unreadable store then fails the start with
   * {@linkcode StoreDamageError} naming the file and the problem.
   */
  storeCheck?: boolean;
}

/** A running ARCP runtime. */
export interface Runtime {
  /**
   * Handles HTTP: the WebSocket endpoint at `/arcp`, `GET /healthz`,
   * `GET /readyz` and `GET /metrics`.
   * Behind {@linkcode serveGated} the info also carries TLS and a way to
   * drop the connection at once, which the slow-reader abort uses.
   */
  fetch(req: Request, info?: Deno.ServeHandlerInfo): Response | Promise<Response>;
  /**
   * Serves one session over newline-delimited JSON streams.
   *
   * @param input bytes in
   * @param output bytes out
   * @returns resolves when input ends
   */
  serveStdio(input: ReadableStream<Uint8Array>, output: WritableStream<Uint8Array>): Promise<void>;
  /** The agent inventory, as the welcome advertises it. */
  inventory(): AgentInventoryEntry[];
  /**
   * Authenticates an HTTP `Authorization: Bearer …` header exactly as
   * `session.hello` authenticates its token, for routes an embedder serves
   * beside the runtime.
   *
   * @param header the header's value, if any
   * @returns the identity, or an `UNAUTHENTICATED` error (answer it with 401)
   */
  authenticateBearer(header: string | null | undefined): Promise<Identity | ArcpError>;
  /** The operator metrics `GET /metrics` renders; an embedder may declare its own beside them. */
  readonly metrics: Metrics;
  /**
   * Rotates a live job's provisioned credential: a new value under the same
   * id, `status {phase: "credential_rotated"}` to its observers, the old
   * value revoked.
   *
   * @param jobId the job
   * @returns resolves once the new value was sent
   */
  rotateCredentials(jobId: string): Promise<void>;
  /** This runtime's node id among the nodes sharing its KV. */
  readonly nodeId: string;
  /**
   * Every node sharing this runtime's KV (for `arcp status` and the
   * management API): id, URL, age, live jobs, lease expiry, whether alive.
   *
   * @returns the nodes, this one first
   */
  listNodes(): Promise<NodeInfo[]>;
  /**
   * Starts draining (as `POST /v1/runtime/drain` does): submits are refused
   * with a retryable `INTERNAL_ERROR` (`details.cap: "draining"`),
   * `/readyz` answers 503, and jobs still running after `deadlineSec` end
   * with a retryable `INTERNAL_ERROR` (`details.cap: "drain_deadline"`),
   * their sessions told. Starting again changes nothing.
   *
   * @param deadlineSec how long running jobs get (default `drainSec`)
   * @returns the drain's status
   */
  drain(deadlineSec?: number): DrainStatus;
  /** Ends a drain now: jobs still running end as at the deadline; resolves once they have. */
  drainNow(): Promise<void>;
  /** Settles once a drain has finished (no job live, every terminal delivered). */
  readonly drained: Promise<void>;
  /** Stops accepting, says `session.bye` to connected sessions, lets commits land and closes KV. */
  close(): Promise<void>;
}

/**
 * Creates a runtime.
 *
 * @param options where state and agents are, who may connect
 * @returns the runtime
 * @example
 * ```ts ignore
 * import { createRuntime } from "./runtime.ts";
 * const runtime = await createRuntime({ kvPath: ":memory:", agentsDir: "./agents", tokens: { secret: "alice" } });
 * Deno.serve({ port: 7777 }, runtime.fetch);
 * ```
 */
export async function createRuntime(options: RuntimeOptions): Promise<Runtime> {
  const startedMs = Date.now();
  const log = options.logger ?? stderrLogger();
  // First, so a damaged store fails the start before anything is started that must be stopped.
  if (
    options.kvPath !== ":memory:" && !isRemoteKv(options.kvPath) && options.storeCheck !== false
  ) {
    await checkStoreFile(options.kvPath);
  }
  const auth = buildAuth({
    ...options.auth,
    tokens: { ...options.auth?.tokens, ...options.tokens },
  });
  const authenticator: Authenticator = auth.authenticator;
  // A standalone binary cannot start deno processes: it describes in workers.
  const describer = isCompiledBinary() ? undefined : await prepareDescriber(
    options.describe?.timeoutMs ?? DEFAULT_DESCRIBE_TIMEOUT_MS,
    options.describe?.heapMb ?? DEFAULT_DESCRIBE_HEAP_MB,
  );
  const agents = await AgentRegistry.fromDirectory(
    options.agentsDir,
    options.onSkippedAgent ??
      ((path, reason) => log.warn("skipped agent module", { path, reason })),
    describer,
  );
  const protection: Protection = {
    paths: await runtimeProtectedPaths({
      kvPath: options.kvPath,
      agentsDir: options.agentsDir,
      secrets: options.denyPaths,
    }),
    listeners: options.listeners ?? [],
  };
  // A `deno compile` binary cannot start `deno run` host processes: it runs
  // workers in-process instead (documented in the README).
  const isolation = options.sandbox ?? (isCompiledBinary() ? "worker" : "process");
  if (isolation === "worker" && options.sandbox === undefined) {
    log.warn(
      "standalone binary: agents run in workers inside this process, without sandbox host processes",
    );
  }
  const launcher = isolation === "process"
    ? await HostLauncher.create({
      heapMb: options.hostHeapMb,
      warmPool: options.warmPool,
      warmMax: options.warmMax,
      jobsPerProcess: options.jobsPerProcess,
      maxWaitMs: options.sandboxWaitMs,
      maxQueueMs: options.sandboxQueueMs,
      memoryMb: options.memoryMb,
      protection,
      allowNpm: options.allowNpm,
      logger: log,
      beatMs: options.liveness?.beatIntervalMs,
    })
    : undefined;
  // The control sockets' folder is runtime state: a worker reaching it could
  // stand in for the runtime before a new sandbox process connects. The
  // processes themselves must reach it, so it is kept from workers (their
  // grants and the submit check), not denied to the whole process.
  const guarded: Protection = launcher
    ? {
      ...protection,
      paths: [...protection.paths, {
        path: launcher.controlDir,
        access: "read-write",
        reason: "the sandbox's control sockets",
      }],
    }
    : protection;
  const sandbox = typeof isolation === "object" ? isolation : new SupervisedSandbox(
    launcher ?? new LocalLauncher({ warmPool: options.warmPool, warmMax: options.warmMax }),
    guarded,
    options.liveness,
  );
  // Opened after the sandbox is ready, so a sandbox that cannot start leaves no KV open.
  const store = await Store.open({
    path: options.kvPath,
    // The runtime's event log is operator history, kept as long as the audit log.
    runtimeLog: { retentionMs: keptFor(options.auditRetentionMs, DEFAULT_SWEEP.auditRetentionMs) },
  });
  // Before anything lists or sweeps: jobs written by an earlier layout get their index entries.
  const indexed = await store.migrate();
  if (indexed > 0) log.info("indexed existing jobs for session.list_jobs", { count: indexed });
  const metrics = new Metrics();
  const sessionEvents = new SessionEvents(log, metrics);
  const sessionLimits = { ...DEFAULT_SESSION_LIMITS, ...options.sessions };
  const sessions = new SessionRegistry(store, sessionLimits, {
    logTtlMs: Math.max(
      options.logTtlMs ?? DEFAULT_SESSION_POLICY.logTtlMs,
      sessionLimits.resumeWindowSec * 1000,
    ),
    maxBufferedBytes: options.maxBufferedBytes ?? DEFAULT_SESSION_POLICY.maxBufferedBytes,
    stallTimeoutMs: options.stallTimeoutMs ?? DEFAULT_SESSION_POLICY.stallTimeoutMs,
    backPressureLag: options.backPressureLag ?? DEFAULT_SESSION_POLICY.backPressureLag,
    log,
  }, sessionEvents);
  const credentials = options.credentials
    ? new CredentialService(options.credentials.provisioner, store, log, options.credentials)
    : undefined;
  // The runtime's event log hears of jobs and sessions; the drain of jobs that end.
  const events = store.runtimeLog;
  const endedSinceStart: Record<string, number> = {};
  // The drain is made after the jobs it drains; until then no job can end.
  const afterJobEnded: { drain?: Drain } = {};
  // A job's entries ride in the commits of its record and of its terminal.
  const journal: JobJournal = {
    accepted: (job) =>
      events.entry("job.accepted", {
        job_id: job.job_id,
        agent: job.agent,
        principal: job.principal,
        session_id: job.session_id,
        ...(job.parent_job_id ? { parent_job_id: job.parent_job_id } : {}),
      }),
    ending: (job) => {
      const writes = events.entry("job.ended", {
        job_id: job.job_id,
        agent: job.agent,
        principal: job.principal,
        status: job.status,
        ...(job.error ? { error_code: job.error.code } : {}),
        ...(job.ended_at ? { duration_ms: Date.parse(job.ended_at) - job.created_ms } : {}),
      });
      // A job its sandbox process failed: that process is gone and replaced.
      const failure = job.error &&
        sandboxFailureOf(new ArcpError(job.error.code, job.error.message, job.error.details));
      if (failure === "host_crash") {
        writes.push(
          ...events.entry("sandbox.host_restarted", { job_id: job.job_id, agent: job.agent }),
        );
      }
      return writes;
    },
    ended: (job) => {
      endedSinceStart[job.status] = (endedSinceStart[job.status] ?? 0) + 1;
      afterJobEnded.drain?.jobEnded();
    },
  };
  const jobs = new JobManager({
    store,
    agents,
    sandbox,
    tools: options.tools,
    credentials,
    protectedPaths: guarded.paths,
    sinks: (id) => sessions.get(id),
    log,
    metrics,
    jobCap: (principal) => isAnonymous(principal) ? auth.anonymous?.maxLiveJobs : undefined,
    journal,
    node: options.node,
    release: (id, to) => sessions.release(id, to),
  }, options.jobs);
  sessions.node = {
    run: jobs.cluster.run,
    isRunAlive: (run) => jobs.cluster.isRunAlive(run),
  };
  const drain = afterJobEnded.drain = new Drain(jobs, {
    started: (deadline, liveJobs) => {
      log.info("draining: new jobs are refused; running jobs may finish until the deadline", {
        deadline,
        live_jobs: liveJobs,
      });
      void events.append("drain.started", { deadline, live_jobs: liveJobs });
    },
    finished: (ended) => {
      log.info("drained", { ended_at_deadline: ended });
      void events.append("drain.finished", { ended_at_deadline: ended });
    },
  });
  sessions.onOpen = (session) =>
    void events.append("session.opened", {
      session_id: session.sessionId,
      principal: session.principal,
    });
  sessions.onEvict = (session) => {
    jobs.dropSession(session.sessionId);
    void events.append("session.closed", {
      session_id: session.sessionId,
      principal: session.principal,
    });
  };
  // A commit that fails for a storage reason (disk full, I/O error) is held
  // back and retried, so nothing uncommitted is sent and seqs stay gap-free;
  // the sessions it holds back are told at once. Requests that need a write
  // are refused meanwhile (see Store.assertWritable). One line when storage
  // starts failing and one when it recovers, however long the stall.
  const stalls = metrics.counter(
    "arcp_storage_stalls_total",
    "Times KV commits started failing for a storage reason (disk full, I/O error).",
  );
  stalls.inc({}, 0);
  let stalledAt: number | undefined;
  store.onCommitStall = (error, sessionIds) => {
    if (stalledAt === undefined) {
      stalledAt = Date.now();
      stalls.inc();
      log.error("storage failing: KV commits fail; holding writes back and retrying", {
        error: describeCause(error),
        sessions: sessionIds.length,
      });
    }
    for (const id of sessionIds) sessions.get(id)?.fault(storageHeld(error));
  };
  store.onCommitRecover = () => {
    log.info("storage recovered: KV commits succeed again", {
      stalled_ms: stalledAt === undefined ? 0 : Date.now() - stalledAt,
    });
    stalledAt = undefined;
  };
  metrics.gauge(
    "arcp_storage_failing",
    "1 while KV commits fail for a storage reason, else 0.",
    () => store.health().ok ? 0 : 1,
  );
  metrics.gauge("arcp_jobs_live", "Jobs running in this process.", () => jobs.liveCount);
  metrics.gauge("arcp_sessions_connected", "Sessions with a connection attached.", () => {
    let n = 0;
    for (const s of sessions.all()) if (s.connected) n++;
    return n;
  });
  metrics.gauge(
    "arcp_sessions_held",
    "Sessions held in memory (connected, or detached within their resume window).",
    () => sessions.size,
  );
  sandboxAndStorageMetrics(metrics, store, launcher?.stats.bind(launcher), launcher?.memoryMb);
  const credentialFailures = metrics.counter(
    "arcp_credential_failures_total",
    "Credential provisioner failures: issue (a job then fails) and revoke attempts (retried).",
    ["op"],
  );
  for (const op of ["issue", "revoke"]) credentialFailures.inc({ op }, 0);
  if (credentials) credentials.onFailure = (op) => credentialFailures.inc({ op });
  let recovered: number;
  try {
    recovered = await jobs.recover((id) => sessions.restore(id, false));
  } catch (err) {
    // A store that cannot be read at start leaves nothing running behind the error.
    jobs.stopAll();
    await jobs.cluster.leave().catch(() => {});
    await sandbox.close();
    await store.close().catch(() => {});
    throw err;
  }
  if (recovered > 0) {
    log.warn("ended jobs of stopped nodes (or of this one's last run)", { count: recovered });
  }
  const sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SWEEP.intervalMs;
  const sweeper = new Sweeper({
    store,
    intervalMs: sweepIntervalMs,
    resumeWindowMs: sessionLimits.resumeWindowSec * 1000,
    jobHistoryTtlMs: keptFor(options.jobHistoryTtlMs, DEFAULT_SWEEP.jobHistoryTtlMs),
    jobRetentionMs: keptFor(options.jobRetentionMs, DEFAULT_SWEEP.jobRetentionMs),
    auditRetentionMs: keptFor(options.auditRetentionMs, DEFAULT_SWEEP.auditRetentionMs),
    // A session another live node holds is that node's, however long since its record changed.
    isHeld: (id, record) =>
      sessions.get(id) !== undefined ||
      (record?.node_run !== undefined && record.node_run !== jobs.cluster.run &&
        jobs.cluster.wasAlive(record.node_run)),
    onError: (err) => log.warn("retention sweep failed; retrying later", { error: String(err) }),
  });
  if (sweepIntervalMs > 0) sweeper.start();

  // One tarpit for bad tokens, whether they come with a hello or to /v1.
  const throttle = new HelloThrottle();
  const ctx: ConnectionContext = {
    runtime: RUNTIME_INFO,
    features: (t) =>
      credentials && (t.secure || (options.credentials?.allowInsecure && isLoopback(t.remoteAddr)))
        ? [...RUNTIME_FEATURES, "provisioned_credentials"]
        : RUNTIME_FEATURES,
    helloTimeoutMs: sessionLimits.helloTimeoutSec * 1000,
    heartbeatSec: options.heartbeatSec ?? DEFAULT_HEARTBEAT_SEC,
    inventory: () => agents.inventory(),
    auth: authenticator,
    anonymous: auth.anonymous,
    throttle,
    sessions,
    jobs,
    store,
    log,
    events: sessionEvents,
  };
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  let closing = false;
  // One close, however many callers: each waits for the same one.
  let closed: Promise<void> | undefined;
  const jobLimits = { ...DEFAULT_JOB_LIMITS, ...options.jobs };
  const sandboxView = (): SandboxView => ({
    mode: isolation === "process" ? "process" : isolation === "worker" ? "worker" : "custom",
    hosts: launcher?.hosts() ?? [],
    warm: launcher ? launcher.warmCount.idle + launcher.warmCount.warm : 0,
    ...(launcher ? { memory_mb: launcher.memoryMb } : {}),
  });
  const drainSec = options.drainSec ?? DEFAULT_DRAIN_SEC;
  const api = managementApi({
    // The one place /v1 verifies a token: the same authenticator chain as
    // session.hello (tokens, JWT, an embedder's). Anonymous callers get no
    // /v1 access: the scheme has no bearer token, and the chain refuses anon:.
    authenticate: async (token) => {
      const identity = await authenticator.authenticate(token);
      return identity instanceof ArcpError ? undefined : identity.principal;
    },
    authFailed: (addr) => throttle.failed(addr),
    admins: new Set(options.adminPrincipals ?? []),
    runtime: RUNTIME_INFO,
    startedMs,
    store,
    kvPath: options.kvPath,
    jobs,
    sessions,
    drain,
    endedSinceStart: () => ({ ...endedSinceStart }),
    sandbox: sandboxView,
    limits: {
      max_frame_bytes: maxFrameBytes,
      max_jobs_per_principal: jobLimits.maxJobsPerPrincipal,
      max_sessions_per_principal: sessionLimits.maxSessionsPerPrincipal,
      resume_window_sec: sessionLimits.resumeWindowSec,
      max_events_per_job: jobLimits.maxEventsPerJob,
      max_log_bytes_per_job: jobLimits.maxLogBytesPerJob,
      max_delegation_depth: jobLimits.maxDelegationDepth,
      drain_sec: drainSec,
    },
    ...(options.credentials
      ? {
        credentials: {
          provisioner: options.credentials.provisioner.name,
          allowInsecure: options.credentials.allowInsecure ?? false,
        },
      }
      : {}),
    deployment: options.deployment ?? {},
  }, { drainSec });
  void events.append("runtime.started", {
    name: RUNTIME_INFO.name,
    version: RUNTIME_INFO.version,
    sandbox: sandboxView().mode,
    recovered_jobs: recovered,
  });

  return {
    fetch: httpHandler({
      runtime: RUNTIME_INFO,
      maxFrameBytes,
      maxSocketBytes: options.maxSocketBytes ?? DEFAULT_MAX_SOCKET_BYTES,
      isClosing: () => closing,
      liveJobs: () => jobs.liveCount,
      storage: () => store.health(),
      metrics,
      connect: (t) => new Connection(ctx, t),
      api: api.fetch,
      isDraining: () => drain.status.state !== "serving",
    }),
    serveStdio: (input, output) =>
      serveLines(input, output, maxFrameBytes, (t) => new Connection(ctx, t)),
    inventory: () => agents.inventory(),
    authenticateBearer: (header) => authenticateBearer(authenticator, header),
    metrics,
    rotateCredentials: (jobId) => jobs.rotateCredentials(jobId),
    nodeId: jobs.cluster.nodeId,
    listNodes: () => jobs.listNodes(),
    drain: (deadlineSec) => drain.start(deadlineSec ?? drainSec),
    drainNow: () => drain.now(),
    drained: drain.finished,
    close: () =>
      closed ??= (async () => {
        closing = true;
        drain.close();
        api.close();
        const sweeping = sweeper.stop();
        for (const s of sessions.all()) {
          if (!s.connected) continue;
          s.sendControl("session.bye", { reason: "runtime shutting down" });
          s.disconnect(1001, "runtime shutting down");
        }
        sessions.close();
        credentials?.close();
        jobs.stopAll();
        // Its record goes: the nodes left end the jobs it stopped at once.
        await jobs.cluster.leave();
        await sandbox.close();
        // After the store: a sweep waiting on a commit held back by a full
        // disk is released when the store gives up on that commit.
        await store.close();
        await sweeping;
      })(),
  };
}

/** Buckets of the KV commit latency (s): a local SQLite commit is about a millisecond. */
const COMMIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Declares the KV commit latency histogram and the sandbox's gauges (zero
 * hosts when agents run in workers of this process).
 *
 * @param metrics the registry
 * @param store whose commits are timed
 * @param stats what the sandbox processes are doing, when there are any
 * @param memoryMb the memory ceiling of each sandbox process
 */
function sandboxAndStorageMetrics(
  metrics: Metrics,
  store: Store,
  stats: (() => SandboxStats) | undefined,
  memoryMb: number | undefined,
): void {
  const commits = metrics.histogram(
    "arcp_kv_commit_seconds",
    "Latency of KV group commits (one atomic commit of every write queued meanwhile).",
    COMMIT_BUCKETS,
  );
  store.onCommit = (seconds) => commits.observe(seconds);
  const hosts = () => stats?.().hosts ?? [];
  metrics.gauge("arcp_sandbox_hosts", "Sandbox processes alive.", () => hosts().length);
  metrics.gauge(
    "arcp_sandbox_host_memory_bytes",
    "Resident set of each sandbox process as it last reported it; host is a small index kept for the process's life.",
    () =>
      hosts().flatMap((h): Array<[Record<string, string>, number]> =>
        h.rssBytes === undefined ? [] : [[{ host: String(h.index) }, h.rssBytes]]
      ),
    ["host"],
  );
  metrics.gauge(
    "arcp_sandbox_host_memory_limit_bytes",
    "The memory ceiling of each sandbox process (a job whose process passes it ends).",
    () => (memoryMb ?? 0) * 1024 * 1024,
  );
  metrics.gauge(
    "arcp_sandbox_pool_processes",
    "Ready sandbox processes by pool: idle (no worker), warm (worker started ahead, ready), recycled (kept for a principal's next job, its worker ready), readying (warm or recycled, the worker still loading), shared (workers shared by jobs of one key).",
    () => {
      const pools = stats?.().pools ??
        { idle: 0, warm: 0, recycled: 0, readying: 0, shared: 0 };
      return Object.entries(pools).map(([pool, n]): [Record<string, string>, number] => [
        { pool },
        n,
      ]);
    },
    ["pool"],
  );
  metrics.gauge(
    "arcp_sandbox_spare_workers",
    "Fresh workers idle sandbox processes hold ready for their key's next jobs (each serves one job), sized by the key's recent demand.",
    () => stats?.().spares ?? 0,
  );
  metrics.gauge(
    "arcp_sandbox_waiting_jobs",
    "Jobs waiting for a sandbox worker while the sandbox is at capacity.",
    () => stats?.().waiting ?? 0,
  );
}

/**
 * A retention period as the sweeper takes it: 0 keeps forever.
 *
 * @param ms the option, if given
 * @param fallback the default
 * @returns the period in ms, `Infinity` for forever
 */
function keptFor(ms: number | undefined, fallback: number): number {
  const period = ms ?? fallback;
  return period === 0 ? Infinity : period;
}

/**
 * Whether this code runs inside a `deno compile` binary (its modules live
 * in a virtual `deno-compile-*` folder).
 *
 * @returns true in a standalone binary
 */
function isCompiledBinary(): boolean {
  return import.meta.url.includes("/deno-compile-");
}

/**
 * Whether a peer address is loopback (127.0.0.0/8 or ::1).
 *
 * @param addr the peer's address
 * @returns true for loopback
 */
function isLoopback(addr: string): boolean {
  return addr.startsWith("127.") || addr === "::1" || addr === "stdio";
}
