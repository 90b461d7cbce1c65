/**
 * One connection's state machine: the hello handshake (new session or
 * resume), then every inbound message routed to its handler, one at a time
 * and in order (so submits are answered in the order received). Pings are
 * answered at once, outside that queue. Bad input of any kind gets a
 * specific error and the session goes on.
 *
 * @module
 */
import { encodeEnvelope } from "../protocol/encode.ts";
import { decodeEnvelope, decodePayload, type Envelope } from "../protocol/envelope.ts";
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import { type Feature, negotiateFeatures } from "../protocol/features.ts";
import { newJobId, newSessionId, newUlid } from "../protocol/ids.ts";
import {
  AckSchema,
  type AgentInventoryEntry,
  CancelSchema,
  type Hello,
  HelloSchema,
  INBOUND,
  ListJobsSchema,
  PingSchema,
  SubmitSchema,
  type Subscribed,
  SubscribeSchema,
  UnsubscribeSchema,
  type Welcome,
} from "../protocol/messages.ts";
import { nowIso } from "../protocol/time.ts";
import type { JobManager } from "../jobs/job_manager.ts";
import type { Store } from "../store/store.ts";
import type { Logger } from "../logger.ts";
import type { Transport, TransportHandler } from "../transport/transport.ts";
import type { HelloThrottle, TokenTable } from "./auth.ts";
import { Heartbeat } from "./heartbeat.ts";
import { listJobs } from "./list_jobs.ts";
import type { SessionRegistry } from "./registry.ts";
import type { Session } from "./session.ts";

/** What every connection shares. */
export interface ConnectionContext {
  /** Runtime name and version for the welcome. */
  runtime: { name: string; version: string };
  /** Features this runtime offers on a given connection. */
  features: (transport: Transport) => readonly Feature[];
  /** Heartbeat interval (seconds) when `heartbeat` is negotiated. */
  heartbeatSec: number;
  /** The agent inventory. */
  inventory: () => AgentInventoryEntry[];
  /** Token → principal. */
  tokens: TokenTable;
  /** Failed-hello throttle. */
  throttle: HelloThrottle;
  /** Sessions. */
  sessions: SessionRegistry;
  /** Jobs. */
  jobs: JobManager;
  /** The store. */
  store: Store;
  /** Operator log. */
  log: Logger;
}

type Handler = (env: Envelope, session: Session) => Promise<void> | void;

/** Message types that need a negotiated feature. */
const FEATURE_OF: Record<string, Feature> = {
  "session.list_jobs": "list_jobs",
  "session.ack": "ack",
  "job.subscribe": "subscribe",
  "job.unsubscribe": "subscribe",
};

/** Handles one transport's frames. */
export class Connection implements TransportHandler {
  #ctx: ConnectionContext;
  #transport: Transport;
  #session: Session | undefined;
  #helloSeen = false;
  #closed = false;
  #queue: Promise<void> = Promise.resolve();
  #heartbeat: Heartbeat | undefined;
  #handlers: Record<string, Handler>;

  /**
   * @param ctx what connections share
   * @param transport this connection's outbound side
   */
  constructor(ctx: ConnectionContext, transport: Transport) {
    this.#ctx = ctx;
    this.#transport = transport;
    this.#handlers = {
      "session.bye": () => this.#close(),
      "session.close": (_env, s) => {
        s.sendControl("session.closed", {});
        this.#close();
      },
      "session.pong": () => {},
      "session.ack": (env, s) => s.ack(decodePayload(AckSchema, env.payload).last_processed_seq),
      "session.list_jobs": (env, s) => this.#listJobs(env, s),
      "job.submit": (env, s) => this.#submit(env, s),
      "job.cancel": (env, s) => this.#cancel(env, s),
      "job.subscribe": (env, s) => this.#subscribe(env, s),
      "job.unsubscribe": (env, s) => {
        ctx.jobs.unsubscribe(s.sessionId, decodePayload(UnsubscribeSchema, env.payload).job_id);
      },
    };
  }

  /**
   * One inbound frame.
   *
   * @param text the frame
   */
  onText(text: string): void {
    if (this.#closed) return;
    this.#heartbeat?.heard();
    let env: Envelope;
    try {
      env = decodeEnvelope(text);
    } catch (err) {
      this.#sessionError(toArcpError(err));
      return;
    }
    if (env.type === "session.ping" && this.#session) {
      this.#pong(env, this.#session);
      return;
    }
    this.#queue = this.#queue.then(() => this.#route(env)).catch((err) => {
      if (!(err instanceof ArcpError)) {
        this.#ctx.log.error("handler failed", { type: env.type, error: String(err) });
      }
      this.#sessionError(toArcpError(err));
    });
  }

  /** The transport closed. */
  onClose(): void {
    this.#closed = true;
    this.#heartbeat?.stop();
    if (this.#session?.detach(this.#transport)) {
      this.#ctx.store.write([this.#session.recordWrite()]).catch(() => {});
    }
  }

  async #route(env: Envelope): Promise<void> {
    if (this.#closed) return;
    if (!this.#helloSeen) {
      if (env.type !== "session.hello") {
        this.#reject(
          new ArcpError(
            "INVALID_REQUEST",
            `type: expected session.hello first, got ${env.type.slice(0, 64)}`,
          ),
        );
        return;
      }
      this.#helloSeen = true;
      await this.#hello(env);
      return;
    }
    const session = this.#session!;
    if (env.type === "session.hello") {
      throw new ArcpError("INVALID_REQUEST", "type: session.hello was already received");
    }
    if (!INBOUND[env.type]) {
      throw new ArcpError(
        "INVALID_REQUEST",
        `type: unknown message type ${JSON.stringify(env.type.slice(0, 64))}`,
      );
    }
    if (env.session_id === undefined) {
      throw new ArcpError(
        "INVALID_REQUEST",
        "session_id: required on every envelope after the hello",
      );
    }
    if (env.session_id !== session.sessionId) {
      throw new ArcpError("INVALID_REQUEST", "session_id: does not name this session");
    }
    const feature = FEATURE_OF[env.type];
    if (feature && !session.has(feature)) {
      throw new ArcpError(
        "INVALID_REQUEST",
        `type: ${env.type} needs the ${feature} feature, which this session did not negotiate`,
      );
    }
    await this.#handlers[env.type](env, session);
  }

  async #hello(env: Envelope): Promise<void> {
    const addr = this.#transport.remoteAddr;
    const wait = this.#ctx.throttle.retryAfterMs(addr);
    if (wait > 0) {
      this.#reject(
        new ArcpError(
          "UNAUTHENTICATED",
          `too many failed hellos from this address; retry in ${Math.ceil(wait / 1000)} s`,
        ),
      );
      return;
    }
    let hello: Hello;
    try {
      hello = decodePayload(HelloSchema, env.payload);
    } catch (err) {
      this.#reject(toArcpError(err));
      return;
    }
    const principal = this.#ctx.tokens.principalFor(hello.auth.token);
    if (principal === undefined) {
      this.#ctx.throttle.fail(addr);
      this.#ctx.log.warn("hello rejected: bad token", { addr });
      this.#reject(new ArcpError("UNAUTHENTICATED", "bearer token not recognised"));
      return;
    }
    const features = negotiateFeatures(
      this.#ctx.features(this.#transport),
      hello.capabilities?.features,
    );
    let opened: { session: Session; resumeToken: string };
    try {
      this.#ctx.sessions.checkCap(principal);
      if (hello.resume) {
        opened = await this.#ctx.sessions.resume(principal, hello.resume);
        opened.session.setFeatures(features);
      } else {
        opened = await this.#ctx.sessions.create(principal, features);
      }
    } catch (err) {
      const e = toArcpError(err);
      if (e.code === "RESUME_WINDOW_EXPIRED") this.#ctx.throttle.fail(addr);
      this.#reject(e);
      return;
    }
    const { session, resumeToken } = opened;
    if (this.#closed) return;
    session.attach(this.#transport, hello.resume?.last_event_seq ?? session.record.last_seq);
    this.#session = session;
    // The rotated token (and the cleared detach time) are durable before the welcome.
    if (hello.resume) await this.#ctx.store.write([session.recordWrite()]);
    const welcome: Welcome = {
      runtime: this.#ctx.runtime,
      resume_token: resumeToken,
      resume_window_sec: this.#ctx.sessions.resumeWindowSec,
      capabilities: { encodings: ["json"], features, agents: this.#ctx.inventory() },
    };
    if (session.has("heartbeat")) {
      welcome.heartbeat_interval_sec = this.#ctx.heartbeatSec;
      this.#heartbeat = new Heartbeat(this.#ctx.heartbeatSec * 1000, {
        ping: () =>
          session.sendControl("session.ping", { nonce: `p_${newUlid()}`, sent_at: nowIso() }),
        lost: () => {
          session.sendControl(
            "session.error",
            new ArcpError(
              "HEARTBEAT_LOST",
              "no message from the client for two heartbeat intervals",
            ).toPayload(),
          );
          this.#close();
        },
      });
    }
    session.sendControl("session.welcome", welcome);
    this.#ctx.log.info(hello.resume ? "session resumed" : "session opened", {
      session_id: session.sessionId,
      principal,
    });
    await session.replay();
    if (hello.resume) await this.#ctx.jobs.redeliverCredentials(session.sessionId);
  }

  #pong(env: Envelope, session: Session): void {
    try {
      const ping = decodePayload(PingSchema, env.payload);
      session.sendControl("session.pong", { ping_nonce: ping.nonce, received_at: nowIso() });
    } catch (err) {
      this.#sessionError(toArcpError(err));
    }
  }

  async #submit(env: Envelope, session: Session): Promise<void> {
    try {
      const submit = decodePayload(SubmitSchema, env.payload);
      const { accepted, start } = await this.#ctx.jobs.submit({
        sink: session,
        traceId: env.trace_id,
      }, submit);
      session.sendControl("job.accepted", accepted, {
        job_id: accepted.job_id,
        trace_id: env.trace_id ?? accepted.trace_id,
      });
      if (start) start();
      else await this.#followReplayedJob(session, accepted.job_id);
    } catch (err) {
      const e = toArcpError(err);
      await session.sendLoggedError(newJobId(), env.trace_id, {
        final_status: "error",
        ...e.toPayload(),
      });
    }
  }

  /**
   * An idempotent replay from another session of the same principal
   * subscribes this session to the job, with full history, so its client
   * sees the events and the terminal. Cancel authority stays where it was.
   */
  async #followReplayedJob(session: Session, jobId: string): Promise<void> {
    const job = await this.#ctx.store.getJob(jobId);
    if (!job || job.session_id === session.sessionId) return;
    const sub = await this.#ctx.jobs.subscribe(session, jobId, { history: true, fromEventSeq: 0 });
    await sub.replay();
  }

  async #cancel(env: Envelope, session: Session): Promise<void> {
    if (!env.job_id) throw new ArcpError("INVALID_REQUEST", "job_id: required on job.cancel");
    const cancel = decodePayload(CancelSchema, env.payload);
    try {
      await this.#ctx.jobs.cancel(session.sessionId, session.principal, env.job_id, cancel.reason);
    } catch (err) {
      const e = toArcpError(err);
      await session.sendLoggedError(env.job_id, env.trace_id, {
        final_status: "error",
        code: e.code,
        message: e.message,
        retryable: false,
        details: { refused: "job.cancel" },
      });
    }
  }

  async #subscribe(env: Envelope, session: Session): Promise<void> {
    const req = decodePayload(SubscribeSchema, env.payload);
    const audit = {
      id: newUlid(),
      at: Date.now(),
      subscriber_principal: session.principal,
      subscriber_session: session.sessionId,
      job_id: req.job_id,
    };
    let sub;
    try {
      sub = await this.#ctx.jobs.subscribe(session, req.job_id, {
        history: req.history ?? false,
        fromEventSeq: req.from_event_seq ?? 0,
      });
    } catch (err) {
      const e = toArcpError(err);
      const owner = await this.#ctx.store.getJob(req.job_id);
      await this.#ctx.store.write([
        this.#ctx.store.auditWrite({
          ...audit,
          owner_principal: owner?.principal,
          decision: e.code,
        }),
      ]);
      throw e;
    }
    await this.#ctx.store.write([
      this.#ctx.store.auditWrite({
        ...audit,
        owner_principal: sub.job.principal,
        decision: "granted",
      }),
    ]);
    const job = sub.job;
    const payload: Subscribed = {
      job_id: job.job_id,
      current_status: job.status,
      agent: job.agent,
      lease: job.lease,
      parent_job_id: job.parent_job_id ?? null,
      trace_id: job.trace_id,
      subscribed_from: session.record.last_seq,
      replayed: req.history ?? false,
    };
    if (job.lease_constraints) payload.lease_constraints = job.lease_constraints;
    if (job.budget_remaining) {
      payload.budget = Object.fromEntries(
        Object.entries(job.budget_remaining).map(([c, v]) => [c, Number(v)]),
      );
    }
    // Credentials follow the submitter only (subscribers are the same principal by policy).
    const credentials = job.principal === session.principal
      ? this.#ctx.jobs.credentialsOf(job.job_id)
      : undefined;
    if (credentials) payload.credentials = credentials;
    session.sendControl("job.subscribed", payload, { job_id: job.job_id, trace_id: job.trace_id });
    await sub.replay();
  }

  async #listJobs(env: Envelope, session: Session): Promise<void> {
    const req = decodePayload(ListJobsSchema, env.payload);
    session.sendControl(
      "session.jobs",
      await listJobs(this.#ctx.store, session.principal, env.id, req),
    );
  }

  /** A session-level error; the session goes on. */
  #sessionError(err: ArcpError): void {
    if (this.#session) this.#session.sendControl("session.error", err.toPayload());
    else this.#reject(err);
  }

  /** A rejected hello: error with a fresh id that names no session, then close. */
  #reject(err: ArcpError): void {
    if (this.#closed) return;
    this.#transport.send(
      encodeEnvelope({
        type: "session.error",
        session_id: newSessionId(),
        payload: err.toPayload(),
      }),
    );
    this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#transport.close(1000, "bye");
    this.onClose();
  }
}
