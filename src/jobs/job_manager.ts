/**
 * The job state machine: submit (with idempotency and caps), start in the
 * sandbox, events, cancel, timeout, lease expiry, terminal outcome, and
 * recovery of jobs a dead process left running.
 *
 * The manager coordinates its parts: {@linkcode Admission}, {@linkcode Fanout}
 * to sessions, {@linkcode AgentListener} and {@linkcode AgentCalls} for what
 * agents send and ask, {@linkcode Delegation}, {@linkcode JobCredentials}, and
 * {@linkcode Lifecycle} for the transitions of a live job.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import type { Submit } from "../protocol/messages.ts";
import type { Input, Transcript, TranscriptPage } from "../protocol/job_input.ts";
import type { Lease } from "../protocol/lease.ts";
import type { ProtectedPath } from "../lease/protected_path.ts";
import type { AgentRegistry } from "../sandbox/registry.ts";
import type { Sandbox, SandboxListener } from "../sandbox/sandbox.ts";
import type { Store } from "../store/store.ts";
import type { JobRecord } from "../store/records.ts";
import type { KvWrite } from "../store/large_value.ts";
import { TERMINAL_STATUSES } from "../protocol/messages.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics.ts";
import type { Credential, CredentialService } from "../credentials/credentials.ts";
import type { ToolHandler } from "./tools.ts";
import type { EventSink, SinkLookup } from "./sink.ts";
import { DEFAULT_JOB_LIMITS, type JobLimits } from "./limits.ts";
import { JOB_ENDED, type LiveJob, newLiveJob } from "./live_job.ts";
import { JobTable } from "./job_table.ts";
import { OutputQuota } from "./output_quota.ts";
import { Fanout, type SubscribeOptions, type Subscription } from "./fanout.ts";
import { Admission, type Submission, type Submitter } from "./admission.ts";
import { Delegation } from "./delegation.ts";
import { AgentCalls } from "./agent_calls.ts";
import { type InputSender, JobInputs } from "./job_input.ts";
import { AgentListener } from "./agent_listener.ts";
import { JobCredentials } from "./job_credentials.ts";
import { Lifecycle } from "./lifecycle.ts";
import { JobEvents } from "./operator_events.ts";
import { AcceptHold } from "./accept_hold.ts";
import { Cluster, type NodeInfo, type NodeOptions } from "./cluster.ts";
import {
  answerSubscribe,
  type GrantedSubscription,
  type SubscribeRequest,
} from "./subscription.ts";

// The manager's API, wherever each piece is defined.
export { DEFAULT_JOB_LIMITS, type JobLimits } from "./limits.ts";
export { acceptedPayload, type Submission, type Submitter } from "./admission.ts";
export type { SubscribeOptions, Subscription } from "./fanout.ts";
export type { GrantedSubscription, SubscribeRequest } from "./subscription.ts";
export { DEFAULT_NODE_LEASE, type NodeInfo, type NodeOptions } from "./cluster.ts";
export type { InputSender } from "./job_input.ts";

/** What a {@linkcode JobManager} runs with. */
export interface JobManagerDeps {
  /** Where jobs, their logs and idempotency keys are kept. */
  store: Store;
  /** The agent inventory. */
  agents: AgentRegistry;
  /** Where agents run. */
  sandbox: Sandbox;
  /** Finds the in-memory session for an id. */
  sinks: SinkLookup;
  /** Where failures are logged. */
  log: Logger;
  /** Where job counters live (a private registry when omitted). */
  metrics?: Metrics;
  /** Host-side tools, added to (or replacing) the built-in ones. */
  tools?: Record<string, ToolHandler>;
  /** Paths no lease reaches (the runtime's own state and code), for the inner wall. */
  protectedPaths?: readonly ProtectedPath[];
  /** Issues provisioned credentials, when configured. */
  credentials?: CredentialService;
  /** A principal's live-job cap when it is not `maxJobsPerPrincipal` (anonymous principals). */
  jobCap?: (principal: string) => number | undefined;
  /** This node's id, URL and lease timings. */
  node?: NodeOptions;
  /**
   * Lets go of a session another node resumes: stops feeding it, closes its
   * connection, and marks its record held by `to`.
   *
   * @param sessionId the session
   * @param to the node run taking it
   */
  release?: (sessionId: string, to: string) => Promise<void>;
  /** Told of every job accepted and every job ended (the runtime's event log). */
  journal?: JobJournal;
}

/**
 * What hears of jobs accepted and ended. Its entries ride in the commits a
 * job makes anyway (its record, its terminal) rather than costing their own:
 * the writes it returns are committed with those, so the caller queues them
 * at once.
 */
export interface JobJournal {
  /**
   * A job is accepted (submitted, or delegated by another job).
   *
   * @param job its record, about to be committed
   * @returns writes to commit with it
   */
  accepted(job: JobRecord): KvWrite[];
  /**
   * A job ends: its terminal envelope is about to be committed.
   *
   * @param job its record, terminal
   * @returns writes to commit with the terminal
   */
  ending(job: JobRecord): KvWrite[];
  /**
   * A job reached its terminal state, committed and delivered.
   *
   * @param job its record
   */
  ended(job: JobRecord): void;
}

/** A live job as operators see it. */
export interface LiveJobView {
  /** Its record, current. */
  record: JobRecord;
  /** The body of its latest `progress` event. */
  progress?: Record<string, unknown>;
  /** Ids and profiles of its provisioned credentials (never values). */
  credentials: Array<{ id: string; profile?: string }>;
}

/** Runs jobs. */
export class JobManager {
  #store: Store;
  #live = new JobTable();
  #fanout: Fanout;
  #credentials: JobCredentials;
  #admission: Admission;
  #lifecycle: Lifecycle;
  #sinks: SinkLookup;
  /** Loads a session to end a claimed job in, when no live node holds it (set by recover). */
  #claimSink: ((sessionId: string) => Promise<EventSink | undefined>) | undefined;
  /** This runtime as a node among those sharing the KV. */
  readonly cluster: Cluster;
  #inputs: JobInputs;
  /** While set, submits are refused with it (a drain). */
  #refusal: (() => ArcpError) | undefined;
  /** Tells the sandbox of a principal's new session, when an agent shares workers. */
  #expect: ((principal: string) => void) | undefined;

  /**
   * @param deps the store, agent inventory, sandbox, session lookup and logger
   * @param limits tunables
   */
  constructor(deps: JobManagerDeps, limits: Partial<JobLimits> = {}) {
    const { store, agents, sinks, credentials: service } = deps;
    this.#store = store;
    this.#sinks = sinks;
    const sandbox = deps.sandbox;
    if (agents.sharesWorkers && sandbox.expect) {
      const sharing = agents.sharingAgents();
      this.#expect = (p) => sandbox.expect!(p, sharing);
    }
    const journal = deps.journal;
    const all = { ...DEFAULT_JOB_LIMITS, ...limits };
    const live = this.#live;
    const policy = {
      requireModelLease: all.requireModelLease,
      protectedPaths: deps.protectedPaths ?? [],
    };
    const events = new JobEvents(deps.log, deps.metrics);
    const hold = new AcceptHold({ holdMs: all.acceptHoldMs, fastMs: all.acceptHoldFastMs });
    const fanout = this.#fanout = new Fanout({
      store,
      sinks,
      log: deps.log,
      live,
      quota: new OutputQuota(all),
      // The lifecycle is made after the fan-out it emits through.
      overQuota: (job, error): Promise<void> => lifecycle.end(job, { status: "error", error }),
      onEvent: (kind, n) => events.event(kind, n),
      runningWaitMs: all.runningWaitMs,
    });
    const credentials = this.#credentials = new JobCredentials({ service, live, fanout });
    const lifecycle = this.#lifecycle = new Lifecycle({
      sandbox: deps.sandbox,
      sinks,
      live,
      fanout,
      credentials,
      events,
      ending: journal && ((job) => journal.ending(job)),
      onEnded: journal && ((job) => journal.ended(job)),
      onTerminal: (job, warm) => {
        // A submitted job's time to its terminal decides whether the agent's next records
        // wait; a job that waited for a worker to load tells nothing about its agent.
        if (!job.parent_job_id && warm) hold.ended(job.agent, Date.now() - job.created_ms);
      },
      // The listener ends jobs through the lifecycle, so it is made after it.
      listen: (job: LiveJob): SandboxListener => listener.for(job),
    }, all);
    const cluster = this.cluster = new Cluster({
      store,
      live,
      log: deps.log,
      events,
      endClaimed: (job, error) => this.#endClaimed(job, error),
      cancelLocal: (jobId, reason, details) => {
        const job = live.get(jobId);
        if (job) lifecycle.cancel(job, reason, details);
      },
      release: deps.release ?? (() => Promise.resolve()),
      fence: () => this.stopAll(),
      deliverInput: (who, req) => this.#inputs.send(who, req),
    }, deps.node);
    const owner = { node_id: cluster.nodeId, node_run: cluster.run };
    const startLocal = lifecycle.start.bind(lifecycle);
    const start = (job: LiveJob, expiresMs: number | undefined) => {
      startLocal(job, expiresMs);
      // Cancel requests for it may follow soon: the request poll starts quick again.
      cluster.poke();
    };
    const checkLease = (lease: Lease) => deps.sandbox.checkLease(lease);
    const end = lifecycle.end.bind(lifecycle);
    const event = fanout.event.bind(fanout);
    this.#admission = new Admission(
      {
        store,
        agents,
        credentials: service,
        live,
        policy,
        checkLease,
        checkCapacity: (agent) => deps.sandbox.checkCapacity?.(agent),
        start,
        owner,
        shared: () => cluster.shared,
        jobCap: deps.jobCap,
        journal: journal && ((job) => journal.accepted(job)),
        holdFor: (agent) => hold.holdFor(agent),
        discard: (job) => lifecycle.discard(job),
      },
      all,
    );
    const delegation = new Delegation({
      agents,
      policy,
      checkLease,
      event,
      create: async (record) => {
        // A parent whose record is still held has it queued first, and its child is
        // accepted only after it: the client hears of the parent before the child.
        const parent = record.parent_job_id ? live.get(record.parent_job_id) : undefined;
        const pending = parent?.pendingRecord;
        pending?.queue();
        const created = await store.createJob(Object.assign(record, owner));
        await pending?.accepted;
        return created;
      },
      accept: (live) => {
        lifecycle.accept(live);
        const writes = journal?.accepted(live.record) ?? [];
        // Queued at once, in the order the journal numbered them.
        if (writes.length > 0) store.write(writes, { failFast: true }).catch(() => {});
      },
      start,
      end,
      issueCredentials: (child) => credentials.issueChild(child),
    }, all);
    const inputs = this.#inputs = new JobInputs({
      store,
      live,
      event,
      elsewhere: (job) => job.node_run !== undefined && job.node_run !== cluster.run,
      forward: (job, who, req) => cluster.forwardInput(job, who, req),
    }, all);
    const calls = new AgentCalls({
      tools: deps.tools,
      event,
      delegate: delegation.delegate.bind(delegation),
      holds: (live, id) =>
        credentials.current(live.record.job_id)?.some((c) => c.id === id) ?? false,
      endpoints: (live) => credentials.current(live.record.job_id)?.map((c) => c.endpoint) ?? [],
      input: inputs.take.bind(inputs),
    });
    const listener = new AgentListener({
      event,
      events: fanout.events.bind(fanout),
      call: calls.call.bind(calls),
      end,
    }, all);
  }

  /** Jobs running in this process. */
  get liveCount(): number {
    return this.#live.size;
  }

  /**
   * Accepts a submit, or throws the rejection.
   *
   * @param who the submitting session
   * @param submit the decoded payload
   * @returns the accepted payload, and how to start the job
   * @throws {ArcpError} the submit rejection
   */
  async submit(who: Submitter, submit: Submit): Promise<Submission> {
    if (this.#refusal) throw this.#refusal();
    return await this.#admission.submit(who, submit);
  }

  /**
   * Hears that a principal opened (or resumed) a session. When an agent
   * shares its workers, the sandbox readies a worker for the principal's
   * first such job while the client gets going (see `Sandbox.expect`).
   *
   * @param principal who opened it
   */
  sessionOpened(principal: string): void {
    this.#expect?.(principal);
  }

  /**
   * Waits until the record of every job accepted so far is committed, holds
   * cut short: a read of job records from KV after this finds every job
   * whose `job.accepted` went out before it (see `Admission.recordsSettled`).
   *
   * @returns resolves once they are settled
   */
  recordsSettled(): Promise<void> {
    return this.#admission.recordsSettled();
  }

  /**
   * Refuses every later submit with an error (a drain), or accepts them again.
   *
   * @param refusal builds the error each refused submit gets; undefined accepts again
   */
  refuseSubmits(refusal: (() => ArcpError) | undefined): void {
    this.#refusal = refusal;
  }

  /**
   * Cancels a job on behalf of an operator (an admin or the job's
   * principal, checked by the caller): as a cancel of its session, the
   * session and subscribers are told, and the job ends CANCELLED with
   * `details` saying who. A job running on another node is cancelled
   * through a cancel request that node acts on.
   *
   * @param jobId the job
   * @param details what the CANCELLED error's details carry (`actor`)
   * @param reason why, if given
   * @returns the job's record: still live when the cancel started, terminal when it had ended
   * @throws {ArcpError} `JOB_NOT_FOUND`
   */
  async cancelAs(
    jobId: string,
    details: Record<string, unknown>,
    reason?: string,
  ): Promise<JobRecord> {
    const live = this.#live.get(jobId);
    if (live && !live.ended) {
      if (!live.cancelling) this.#lifecycle.cancel(live, reason, details);
      return live.record;
    }
    const job = await this.#store.getJob(jobId);
    if (!job) throw new ArcpError("JOB_NOT_FOUND", `no job ${jobId}`, { job_id: jobId });
    if (!TERMINAL_STATUSES.has(job.status) && job.node_run !== this.cluster.run) {
      this.#store.assertWritable();
      await this.#store.nodes.requestCancel(jobId, {
        ...(reason ? { reason } : {}),
        details,
        at: Date.now(),
      });
    }
    return job;
  }

  /**
   * Ends every live job with an error, each session told; for the end of
   * a drain.
   *
   * @param error what they end with
   * @returns resolves once every terminal is committed and delivered
   */
  async endAll(error: ArcpError): Promise<void> {
    // Every one, children included: a parent's end finds its children ended already.
    const all = [...this.#live.values()].filter((live) => !live.ended);
    await Promise.all(all.map((live) => this.#lifecycle.end(live, { status: "error", error })));
  }

  /** Whether no job is live and no terminal is still on its way to its sessions. */
  get idle(): boolean {
    return this.#live.size === 0 && this.#lifecycle.ending === 0;
  }

  /**
   * The jobs live in this process, as operators see them.
   *
   * @returns them, in the order they went live
   */
  liveJobs(): LiveJobView[] {
    return [...this.#live.values()].map((live) => this.#view(live));
  }

  /**
   * One live job, as operators see it.
   *
   * @param jobId the job
   * @returns it, or undefined when it is not live here
   */
  liveJob(jobId: string): LiveJobView | undefined {
    const live = this.#live.get(jobId);
    return live && this.#view(live);
  }

  #view(live: LiveJob): LiveJobView {
    const credentials = (this.credentialsOf(live.record.job_id) ?? []).map((c) => ({
      id: c.id,
      ...(c.profile ? { profile: c.profile } : {}),
    }));
    return {
      record: live.record,
      ...(live.progress ? { progress: live.progress } : {}),
      credentials,
    };
  }

  /**
   * Sends input to a running job (vendor feature `x-arcp-deno.input`).
   *
   * @param who the sending session and its principal
   * @param req the decoded request
   * @returns the input's `input_seq`, once recorded in the job's history
   * @throws {ArcpError} the refusal (see `JobInputs.send`)
   */
  sendInput(who: InputSender, req: Input): Promise<number> {
    return this.#inputs.send(who, req);
  }

  /**
   * One page of a job's transcript (vendor feature `x-arcp-deno.input`).
   *
   * @param principal the reading principal
   * @param req the decoded request
   * @returns the page, without `request_id`
   * @throws {ArcpError} `JOB_NOT_FOUND` or `PERMISSION_DENIED`
   */
  transcript(principal: string, req: Transcript): Promise<Omit<TranscriptPage, "request_id">> {
    return this.#inputs.transcript(principal, req);
  }

  /**
   * Cancels a job on behalf of a session.
   *
   * @param sessionId the requesting session
   * @param principal its principal
   * @param jobId the job
   * @param reason why, if given
   * @throws {ArcpError} `JOB_NOT_FOUND` or `PERMISSION_DENIED`
   */
  async cancel(
    sessionId: string,
    principal: string,
    jobId: string,
    reason?: string,
  ): Promise<void> {
    const live = this.#live.get(jobId);
    const job = live?.record ?? await this.#store.getJob(jobId);
    if (!job || job.principal !== principal) {
      throw new ArcpError("JOB_NOT_FOUND", `no job ${jobId}`);
    }
    if (job.session_id !== sessionId) {
      throw new ArcpError(
        "PERMISSION_DENIED",
        "only the session that submitted a job may cancel it",
      );
    }
    if (live) {
      if (!live.ended && !live.cancelling) this.#lifecycle.cancel(live, reason);
      return;
    }
    if (TERMINAL_STATUSES.has(job.status) || job.node_run === this.cluster.run) return;
    // Running on another node: it acts on the request; its terminal reaches
    // this session through the feed from KV.
    this.#store.assertWritable();
    await this.#store.nodes.requestCancel(jobId, { ...(reason ? { reason } : {}), at: Date.now() });
    this.#sinks(sessionId)?.sendControl("job.cancelled", reason ? { reason } : {}, {
      job_id: job.job_id,
      trace_id: job.trace_id,
    });
  }

  /**
   * Feeds a session, just resumed on this node, the envelopes of its jobs
   * running on other nodes that its log does not hold yet, and then live
   * until each ends; and goes on with the jobs it subscribed to.
   *
   * @param sink the session
   * @param jobIds jobs to consider besides those live in KV now (listed before the session was taken)
   * @returns resolves once the feeds are started
   */
  async followSession(sink: EventSink, jobIds: readonly string[] = []): Promise<void> {
    const ids = new Set([...jobIds, ...await this.#store.liveJobIdsOf(sink.sessionId)]);
    for (const id of ids) {
      const here = this.#live.get(id);
      if (here) {
        // Back on the node running it: first what another node fed it meanwhile.
        if (here.record.session_id === sink.sessionId) await this.#fanout.catchUp(sink, here);
        continue;
      }
      const job = await this.#store.getJob(id);
      if (!job || job.session_id !== sink.sessionId) continue;
      this.#fanout.follow(sink, job, { from: 0, owner: true });
    }
    // Its subscriptions go on from where its log stops, wherever the jobs run.
    for (const [id, from] of sink.subscriptions()) {
      await this.#fanout.resumeSubscription(sink, id, from);
    }
  }

  /**
   * The live jobs a session submitted, from KV (any node).
   *
   * @param sessionId the session
   * @returns their ids
   */
  liveJobIdsOf(sessionId: string): Promise<string[]> {
    return this.#store.liveJobIdsOf(sessionId);
  }

  /**
   * Every node sharing this KV: id, URL, age, live jobs, lease expiry.
   *
   * @returns the nodes, this one first
   */
  listNodes(): Promise<NodeInfo[]> {
    return this.cluster.listNodes();
  }

  /** Ends a job claimed from a dead node, in its session's log when no live node holds that. */
  async #endClaimed(job: JobRecord, error: ArcpError): Promise<void> {
    const sink = this.#sinks(job.session_id) ?? await this.#claimSink?.(job.session_id);
    await this.#lifecycle.end(newLiveJob({ record: job }), { status: "error", error }, sink);
  }

  /**
   * Rotates a live job's credential: a fresh value under the same id, the
   * old one revoked, and `status {phase: "credential_rotated"}` to the job's
   * observers (the value never reaches KV: the logged copy is redacted).
   *
   * @param jobId the job
   * @returns resolves once the new value was sent
   * @throws {ArcpError} `JOB_NOT_FOUND` when the job is not live or has no credential
   */
  rotateCredentials(jobId: string): Promise<void> {
    return this.#credentials.rotate(jobId);
  }

  /**
   * The current credentials of a live job.
   *
   * @param jobId the job
   * @returns them, or undefined when the job has none or ended
   */
  credentialsOf(jobId: string): Credential[] | undefined {
    return this.#credentials.current(jobId);
  }

  /**
   * Sends the current credentials of a session's live jobs again (after a
   * resume: the replayed log holds only redacted copies).
   *
   * @param sessionId the resumed session
   * @returns resolves once sent
   */
  redeliverCredentials(sessionId: string): Promise<void> {
    return this.#credentials.redeliver(sessionId);
  }

  /**
   * Joins the nodes sharing this KV and ends the jobs of dead nodes (this
   * node id's earlier runs included) — never a live node's — in their
   * sessions' logs, then keeps doing so while it runs. Call once at start,
   * after sessions can be restored.
   *
   * @param restore loads a session into memory when no live node holds it
   * @returns how many jobs were ended now
   * @throws {Error} when another live node holds this node id
   */
  async recover(restore: (sessionId: string) => Promise<EventSink | undefined>): Promise<number> {
    this.#claimSink = restore;
    await this.cluster.join();
    const n = await this.cluster.reap();
    this.cluster.start();
    return n;
  }

  /**
   * Stops every live job (process shutdown). Their records stay live in KV,
   * so the next start reports them as interrupted.
   */
  stopAll(): void {
    this.#fanout.stopFollowing();
    for (const live of this.#live.values()) {
      for (const cancel of live.timers) cancel();
      live.abort.abort(JOB_ENDED);
      live.run?.kill();
      // A record still held is never committed: its client has not heard of the job.
      live.pendingRecord?.drop(
        new ArcpError("INTERNAL_ERROR", "the runtime stopped before the job was accepted; retry"),
      );
    }
    this.#live.clear();
  }

  /**
   * Subscribes a session to a job (same principal only). The session is
   * registered before this resolves, so nothing emitted afterwards is missed;
   * call `replay()` after sending `job.subscribed`.
   *
   * @param sink the subscribing session
   * @param jobId the job
   * @param options history replay
   * @returns the job and the replay step
   * @throws {ArcpError} `JOB_NOT_FOUND` or `PERMISSION_DENIED`
   */
  subscribe(sink: EventSink, jobId: string, options: SubscribeOptions): Promise<Subscription> {
    return this.#fanout.subscribe(sink, jobId, options);
  }

  /**
   * Answers a session's `job.subscribe`: subscribes it, audits the decision
   * and builds the `job.subscribed` payload.
   *
   * @example
   * ```ts ignore
   * const sub = await jobs.answerSubscribe(session, request, () => session.record.last_seq);
   * session.sendControl("job.subscribed", sub.payload, { job_id: sub.job.job_id });
   * await sub.replay();
   * ```
   *
   * @param sink the subscribing session
   * @param request the decoded `job.subscribe` payload
   * @param subscribedFrom reads the session's latest `event_seq`
   * @returns the payload to send, then the replay step
   * @throws {ArcpError} `JOB_NOT_FOUND` or `PERMISSION_DENIED`
   */
  answerSubscribe(
    sink: EventSink,
    request: SubscribeRequest,
    subscribedFrom: () => number,
  ): Promise<GrantedSubscription> {
    return answerSubscribe(
      { store: this.#store, fanout: this.#fanout, credentialsOf: (id) => this.credentialsOf(id) },
      sink,
      request,
      subscribedFrom,
    );
  }

  /**
   * Stops delivering a job to a session.
   *
   * @param sessionId the subscribed session
   * @param jobId the job
   */
  unsubscribe(sessionId: string, jobId: string): void {
    this.#fanout.unsubscribe(sessionId, jobId);
  }

  /**
   * Forgets a session that left memory.
   *
   * @param sessionId the session
   */
  dropSession(sessionId: string): void {
    this.#fanout.dropSession(sessionId);
  }
}
