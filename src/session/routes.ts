/**
 * The route table: every message type a session accepts after its
 * handshake, the schema its payload is decoded against (once, before the
 * handler runs), the feature it needs and its handler. A type not in
 * {@linkcode ROUTES} is answered with `INVALID_REQUEST`.
 *
 * `session.hello` is not routed here: the first one opens the connection
 * (see `handshake.ts`) and a second one is refused.
 *
 * @module
 */
import type { z } from "zod";
import type { Envelope } from "../protocol/envelope.ts";
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import type { Feature } from "../protocol/features.ts";
import { newJobId } from "../protocol/ids.ts";
import {
  AckSchema,
  ByeSchema,
  CancelSchema,
  EmptySchema,
  ListJobsSchema,
  PingSchema,
  PongSchema,
  SubmitSchema,
  SubscribeSchema,
  UnsubscribeSchema,
} from "../protocol/messages.ts";
import { nowIso } from "../protocol/time.ts";
import { StoreDamageError } from "../store/damage.ts";
import type { ConnectionContext } from "./context.ts";
import { listJobs } from "./list_jobs.ts";
import type { Session } from "./session.ts";
import { INPUT_ROUTES } from "./input_routes.ts";

/** One inbound message, decoded, as its handler gets it. */
export interface Inbound<P> {
  /** The envelope as received. */
  readonly env: Envelope;
  /** Its payload, decoded against the route's schema. */
  readonly payload: P;
  /** The session it arrived on. */
  readonly session: Session;
  /** What every connection shares. */
  readonly ctx: ConnectionContext;
  /** Ends this connection; the session stays resumable. */
  close(): void;
}

/** One row of the route table. */
export interface Route<S extends z.ZodType = z.ZodType> {
  /** Schema of the payload. */
  readonly schema: S;
  /** The feature the session must have negotiated to send this type. */
  readonly feature?: Feature;
  /**
   * Handled as it arrives rather than behind the messages queued before it,
   * and without the envelope checks, so liveness never waits on a slow submit.
   */
  readonly inline?: true;
  /**
   * Runs the message.
   *
   * @param req the decoded message
   * @returns resolves once handled
   */
  handle(req: Inbound<z.output<S>>): Promise<void> | void;
  /**
   * Answers a failure of this message, decoding included; without it the
   * failure is a `session.error`.
   *
   * @param err what went wrong
   * @param req the message, payload undecoded
   * @returns resolves once answered
   */
  refuse?(err: ArcpError, req: Inbound<unknown>): Promise<void>;
}

/**
 * Message type → schema, feature and handler.
 *
 * @example
 * ```ts ignore
 * import { routeOf } from "./routes.ts";
 * routeOf("job.cancel")?.schema; // CancelSchema
 * routeOf("job.teleport"); // undefined
 * ```
 */
export const ROUTES: Readonly<Record<string, Route>> = {
  "session.bye": route({ schema: ByeSchema, handle: ({ close }) => close() }),
  "session.close": route({
    schema: EmptySchema,
    handle: ({ session, close }) => {
      session.sendControl("session.closed", {});
      close();
    },
  }),
  "session.ping": route({ schema: PingSchema, inline: true, handle: pong }),
  // A pong only has to arrive: every frame already counts as heard by the heartbeat.
  "session.pong": route({ schema: PongSchema, handle: () => {} }),
  "session.ack": route({
    schema: AckSchema,
    feature: "ack",
    handle: ({ session, payload }) => session.ack(payload.last_processed_seq),
  }),
  "session.list_jobs": route({ schema: ListJobsSchema, feature: "list_jobs", handle: list }),
  "job.submit": route({ schema: SubmitSchema, handle: submit, refuse: refuseSubmit }),
  "job.cancel": route({ schema: CancelSchema, handle: cancel }),
  "job.subscribe": route({ schema: SubscribeSchema, feature: "subscribe", handle: subscribe }),
  "job.unsubscribe": route({
    schema: UnsubscribeSchema,
    feature: "subscribe",
    handle: async ({ ctx, session, payload }) => {
      ctx.jobs.unsubscribe(session.sessionId, payload.job_id);
      // A node resuming the session later must not take the subscription up again.
      await ctx.store.write([session.recordWrite()]);
    },
  }),
  ...INPUT_ROUTES,
};

/**
 * The route of a message type.
 *
 * @param type the envelope's `type`
 * @returns its route, or undefined for a type no session accepts
 */
export function routeOf(type: string): Route | undefined {
  // Own keys only: "constructor" or "toString" is an unknown type, not a route.
  return Object.hasOwn(ROUTES, type) ? ROUTES[type] : undefined;
}

/**
 * Types one row: the schema fixes what the handler's payload is.
 *
 * @param row the row
 * @returns the same row, as the table holds it
 */
function route<S extends z.ZodType>(row: Route<S>): Route {
  return row;
}

function pong({ session, payload }: Inbound<z.output<typeof PingSchema>>): void {
  session.sendControl("session.pong", { ping_nonce: payload.nonce, received_at: nowIso() });
}

async function list(
  { ctx, session, env, payload }: Inbound<z.output<typeof ListJobsSchema>>,
): Promise<void> {
  // A job whose record is still on its way is listed once it is committed
  // (its `job.accepted` goes out first): no listing sent after a job's
  // `job.accepted` misses it.
  await ctx.jobs.recordsSettled();
  session.sendControl(
    "session.jobs",
    await listJobs(ctx.store, session.principal, env.id, payload),
  );
}

async function submit(
  { ctx, session, env, payload }: Inbound<z.output<typeof SubmitSchema>>,
): Promise<void> {
  // A job is a write: while storage fails it is refused now, not accepted
  // whenever the disk has room again.
  ctx.store.assertWritable();
  const { accepted, start, announce } = await ctx.jobs.submit({
    sink: session,
    traceId: env.trace_id,
  }, payload);
  let acceptedText: string | undefined;
  const encodeAccepted = (): string =>
    acceptedText ??= session.encodeControl("job.accepted", accepted, {
      job_id: accepted.job_id,
      trace_id: env.trace_id ?? accepted.trace_id,
    });
  const sendAccepted = () => session.sendEncoded("job.accepted", encodeAccepted());
  if (!start) {
    sendAccepted();
    return await followReplayedJob(ctx, session, accepted.job_id);
  }
  if (announce) {
    // An early start: the job runs while its record commits, and `job.accepted`
    // goes out as that commit settles, ahead of every envelope of the job (see
    // `PendingRecord`: `announce` must be called before this yields to I/O, as
    // here); a failed commit refuses the submit, nothing of the job sent. Its
    // text is built while the job runs (a microtask queued once the start is,
    // so after the one that writes it): the commit's settling only queues it.
    try {
      start();
      queueMicrotask(() => {
        try {
          encodeAccepted();
        } catch {
          // Built again, and its failure reported, when it is sent.
        }
      });
    } finally {
      await announce(sendAccepted);
    }
    return;
  }
  // The job's start goes to its sandbox first, its `job.accepted` to the client right after
  // (a microtask queued now runs after the one that writes the start): the result is what
  // the client waits for. Nothing of the job can reach the client first: every envelope of
  // it waits for a commit, which completes in a later turn of the event loop.
  try {
    start();
  } finally {
    queueMicrotask(sendAccepted);
  }
}

/**
 * A refused submit is a `job.error` under a fresh job id, so the session's
 * seqs stay gap-free (a `session.error` while storage fails: see
 * `Session.sendLoggedError`).
 */
async function refuseSubmit(err: ArcpError, { session, env }: Inbound<unknown>): Promise<void> {
  await session.sendLoggedError(newJobId(), env.trace_id, {
    final_status: "error",
    ...err.toPayload(),
  });
}

/**
 * An idempotent replay from another session of the same principal
 * subscribes this session to the job, with full history, so its client
 * sees the events and the terminal. Cancel authority stays where it was.
 */
async function followReplayedJob(
  ctx: ConnectionContext,
  session: Session,
  jobId: string,
): Promise<void> {
  const job = await ctx.store.getJob(jobId);
  if (!job || job.session_id === session.sessionId) return;
  const sub = await ctx.jobs.subscribe(session, jobId, { history: true, fromEventSeq: 0 });
  await replayHistory(ctx, session, jobId, sub.replay);
}

async function cancel(
  { ctx, session, env, payload }: Inbound<z.output<typeof CancelSchema>>,
): Promise<void> {
  if (!env.job_id) throw new ArcpError("INVALID_REQUEST", "job_id: required on job.cancel");
  try {
    await ctx.jobs.cancel(session.sessionId, session.principal, env.job_id, payload.reason);
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

async function subscribe(
  { ctx, session, payload: req }: Inbound<z.output<typeof SubscribeSchema>>,
): Promise<void> {
  // Subscribing writes (the audit entry, the envelopes stamped into this
  // session's log): while storage fails it is refused at once.
  ctx.store.assertWritable();
  const sub = await ctx.jobs.answerSubscribe(session, req, () => session.record.last_seq);
  const { job, payload } = sub;
  // The subscription is in the session record before it is confirmed: a node resuming the session goes on with it.
  await ctx.store.write([session.recordWrite()]);
  session.sendControl("job.subscribed", payload, { job_id: job.job_id, trace_id: job.trace_id });
  await replayHistory(ctx, session, job.job_id, sub.replay);
}

/**
 * Replays a subscription's history. History that cannot be read whole (an
 * entry KV refuses, a missing or garbled one) ends the connection with
 * `session.error INTERNAL_ERROR` naming storage and close 1011, rather
 * than leaving the subscriber a stream that stopped short; the session
 * stays resumable.
 */
async function replayHistory(
  ctx: ConnectionContext,
  session: Session,
  jobId: string,
  replay: () => Promise<void>,
): Promise<void> {
  try {
    await replay();
  } catch (err) {
    ctx.jobs.unsubscribe(session.sessionId, jobId);
    // Reading and decoding stored history is all a replay does besides committing, and
    // commit failures are reported to the session, not thrown.
    const error = err instanceof ArcpError ? err : new StoreDamageError(
      "malformed",
      `the history of job ${jobId} could not be replayed: ${toArcpError(err).message}`,
      { job_id: jobId },
    );
    ctx.log.error("job history replay failed; connection closed", {
      session_id: session.sessionId,
      job_id: jobId,
      error: error.message,
    });
    session.endConnection(error, "job history could not be replayed");
  }
}
