/**
 * The route rows of the vendor feature `x-arcp-deno.input`: input to a
 * running job and its transcript. Both answer with a response naming the
 * request envelope's `id`, and a refusal is `x-arcp-deno.refused` to the
 * requester alone (see `protocol/job_input.ts`).
 *
 * @module
 */
import type { z } from "zod";
import type { ArcpError } from "../protocol/errors.ts";
import {
  INPUT_ACCEPTED_TYPE,
  INPUT_FEATURE,
  INPUT_TYPE,
  InputSchema,
  REFUSED_TYPE,
  TRANSCRIPT_PAGE_TYPE,
  TRANSCRIPT_TYPE,
  TranscriptSchema,
} from "../protocol/job_input.ts";
import type { Inbound, Route } from "./routes.ts";

/** The rows, by message type. */
export const INPUT_ROUTES: Readonly<Record<string, Route>> = {
  [INPUT_TYPE]: {
    schema: InputSchema,
    feature: INPUT_FEATURE,
    handle: sendInput as Route["handle"],
    refuse,
  },
  [TRANSCRIPT_TYPE]: {
    schema: TranscriptSchema,
    feature: INPUT_FEATURE,
    handle: transcript as Route["handle"],
    refuse,
  },
};

async function sendInput(
  { ctx, session, env, payload }: Inbound<z.output<typeof InputSchema>>,
): Promise<void> {
  // An input is recorded before it is acknowledged: while storage fails it is refused now.
  ctx.store.assertWritable();
  const seq = await ctx.jobs.sendInput(
    { sessionId: session.sessionId, principal: session.principal },
    payload,
  );
  session.sendControl(INPUT_ACCEPTED_TYPE, {
    request_id: env.id,
    job_id: payload.job_id,
    input_seq: seq,
  }, { job_id: payload.job_id });
}

async function transcript(
  { ctx, session, env, payload }: Inbound<z.output<typeof TranscriptSchema>>,
): Promise<void> {
  const page = await ctx.jobs.transcript(session.principal, payload);
  session.sendControl(TRANSCRIPT_PAGE_TYPE, { request_id: env.id, ...page }, {
    job_id: payload.job_id,
  });
}

function refuse(err: ArcpError, { session, env }: Inbound<unknown>): Promise<void> {
  const payload = env.payload as { job_id?: unknown } | undefined;
  const jobId = typeof payload?.job_id === "string" ? payload.job_id : undefined;
  session.sendControl(REFUSED_TYPE, { request_id: env.id, ...err.toPayload() }, {
    ...(jobId ? { job_id: jobId } : {}),
  });
  return Promise.resolve();
}
