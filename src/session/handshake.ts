/**
 * The hello handshake: authenticate (bearer token through the runtime's
 * `Authenticator`, or the opt-in anonymous scheme; repeated failures
 * tarpitted), negotiate features, open a
 * new session or resume one, then welcome, replay what the client missed
 * and hand a resumed job its credentials again. Any refusal is a
 * `session.error` followed by a close.
 *
 * @module
 */
import { decodePayload, type Envelope } from "../protocol/envelope.ts";
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import { negotiateFeatures } from "../protocol/features.ts";
import { newUlid } from "../protocol/ids.ts";
import { type Hello, HelloSchema, type Welcome } from "../protocol/messages.ts";
import { nowIso } from "../protocol/time.ts";
import type { Transport } from "../transport/transport.ts";
import {
  ANONYMOUS_PREFIX,
  anonymousIdentity,
  authError,
  authFailureOf,
  type Identity,
  isAnonymous,
} from "./auth.ts";
import type { ConnectionContext } from "./context.ts";
import { Heartbeat } from "./heartbeat.ts";
import type { Session } from "./session.ts";

/** What the handshake needs from the connection it opens. */
export interface HandshakeHost {
  /** The connection's outbound side. */
  readonly transport: Transport;
  /**
   * Whether the connection has closed meanwhile.
   *
   * @returns true once closed
   */
  isClosed(): boolean;
  /**
   * Refuses the hello: an error naming no session, then close.
   *
   * @param err why
   */
  reject(err: ArcpError): void;
  /** Closes the connection. */
  close(): void;
  /** The client fell silent: the session is dropped (reported as such) and the connection closed. */
  lost(): void;
  /**
   * The session is attached: from here on pings are answered and a close
   * detaches it.
   *
   * @param session the opened session
   */
  adopt(session: Session): void;
  /**
   * Every inbound frame from here on counts as heard, and a close stops it.
   *
   * @param heartbeat the started heartbeat
   */
  watch(heartbeat: Heartbeat): void;
}

/**
 * Runs the handshake for a connection's first envelope, a `session.hello`.
 *
 * @param ctx what connections share
 * @param env the hello envelope
 * @param host the connection being opened
 * @returns resolves once the session is welcomed and caught up, or refused
 */
export async function handshake(
  ctx: ConnectionContext,
  env: Envelope,
  host: HandshakeHost,
): Promise<void> {
  const addr = host.transport.remoteAddr;
  let hello: Hello;
  try {
    hello = decodePayload(HelloSchema, env.payload);
  } catch (err) {
    host.reject(toArcpError(err));
    return;
  }
  const identity = await identify(ctx, hello);
  if (identity instanceof ArcpError) {
    const reason = authFailureOf(identity);
    // Held in the tarpit when this address keeps failing; a valid token is
    // never held, nor a client refused for the runtime's side (its identity
    // provider down) or for a scheme it could not know was off.
    const held = reason === "jwks_unavailable" || reason === "anonymous_disabled"
      ? 0
      : await ctx.throttle.failed(addr);
    ctx.events.helloRejected(reason, addr, held, undefined, identity.message);
    host.reject(identity);
    return;
  }
  const { principal } = identity;
  const features = negotiateFeatures(ctx.features(host.transport), hello.capabilities?.features);
  let opened: { session: Session; resumeToken: string };
  let release: (() => void) | undefined;
  let following: string[] = [];
  try {
    // Opening or resuming a session is a write: while storage fails, say so
    // at once instead of leaving the hello unanswered until the disk has room.
    ctx.store.assertWritable();
    const anonymous = isAnonymous(principal) ? ctx.anonymous : undefined;
    release = ctx.sessions.reserve(principal, {
      limit: anonymous?.maxSessions,
      group: anonymous &&
        { name: "anonymous", prefix: ANONYMOUS_PREFIX, limit: anonymous.maxConnected },
      resuming: hello.resume?.session_id,
    });
    if (hello.resume) {
      // Listed before the session is taken: a job another node ends meanwhile is still followed.
      following = ctx.sessions.get(hello.resume.session_id)
        ? []
        : await ctx.jobs.liveJobIdsOf(hello.resume.session_id);
      opened = await ctx.sessions.resume(principal, hello.resume);
      opened.session.setFeatures(features);
    } else {
      opened = await ctx.sessions.create(principal, features);
    }
  } catch (err) {
    release?.();
    const e = toArcpError(err);
    if (e.code === "RESUME_WINDOW_EXPIRED") {
      const held = await ctx.throttle.failed(addr);
      ctx.events.helloRejected("resume_refused", addr, held, hello.resume?.session_id);
    }
    host.reject(e);
    return;
  }
  // The slot passes to the attached session in this same turn, before anything else can count.
  release();
  // Anonymous clients are many and short-lived: none gets a process started ahead.
  if (!isAnonymous(principal)) ctx.jobs.sessionOpened(principal);
  const { session, resumeToken } = opened;
  if (host.isClosed()) return;
  session.attach(host.transport, hello.resume?.last_event_seq ?? session.record.last_seq);
  host.adopt(session);
  // The rotated token (and the cleared detach time) are durable before the welcome.
  if (hello.resume) await ctx.store.write([session.recordWrite()]);
  const welcome: Welcome = {
    runtime: ctx.runtime,
    resume_token: resumeToken,
    resume_window_sec: ctx.sessions.resumeWindowSec,
    capabilities: { encodings: ["json"], features, agents: ctx.inventory() },
  };
  if (session.has("heartbeat")) {
    welcome.heartbeat_interval_sec = ctx.heartbeatSec;
    host.watch(startHeartbeat(ctx.heartbeatSec, session, host));
  }
  session.sendControl("session.welcome", welcome);
  ctx.log.info(hello.resume ? "session resumed" : "session opened", {
    session_id: session.sessionId,
    principal,
    auth: identity.scheme,
  });
  // A replay that did not finish (connection gone, replaced, or ended for a storage fault)
  // leaves the credentials to the next resume.
  if (!(await session.replay())) return;
  if (hello.resume) {
    // Its jobs running on other nodes reach it from KV from here on.
    await ctx.jobs.followSession(session, following);
    await ctx.jobs.redeliverCredentials(session.sessionId);
  }
}

/**
 * Who a hello is. A bearer token goes to the runtime's authenticator. An
 * anonymous hello, when the runtime allows them, is a new `anon:` principal,
 * or, resuming, the anonymous principal of the session it names (the resume
 * token then proves it; a wrong one is refused by the resume like any other).
 *
 * @param ctx what connections share
 * @param hello the decoded hello
 * @returns the identity, or an `UNAUTHENTICATED` error
 */
async function identify(ctx: ConnectionContext, hello: Hello): Promise<Identity | ArcpError> {
  if (hello.auth.scheme === "bearer") return await ctx.auth.authenticate(hello.auth.token);
  if (!ctx.anonymous) {
    return authError(
      "anonymous_disabled",
      'anonymous sessions are not enabled on this runtime; use auth scheme "bearer" with a token',
    );
  }
  if (hello.resume) {
    const resumed = await ctx.sessions.restore(hello.resume.session_id);
    if (resumed && isAnonymous(resumed.principal)) {
      return { principal: resumed.principal, scheme: "anonymous" };
    }
  }
  return anonymousIdentity();
}

/**
 * Pings the client when it falls silent and closes once it stays silent.
 *
 * @param intervalSec the negotiated interval
 * @param session where pings and the loss report go
 * @param host the connection to close on loss
 * @returns the running heartbeat
 */
function startHeartbeat(intervalSec: number, session: Session, host: HandshakeHost): Heartbeat {
  return new Heartbeat(intervalSec * 1000, {
    ping: () => session.sendControl("session.ping", { nonce: `p_${newUlid()}`, sent_at: nowIso() }),
    lost: () => {
      session.sendControl(
        "session.error",
        new ArcpError(
          "HEARTBEAT_LOST",
          "no message from the client for two heartbeat intervals",
        ).toPayload(),
      );
      host.lost();
    },
  });
}
