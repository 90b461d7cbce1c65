/**
 * Helpers for the lease tests: the `ops` fixture agent run over a real
 * WebSocket against a real runtime.
 *
 * @module
 */
import { equal } from "assert";
import { ROOT } from "../../testing/server.ts";
import type { Env, WsClient } from "../../testing/ws_client.ts";

/** The fixture agents of the lease tests. */
export const LEASE_AGENTS = `${ROOT}/tests/fixtures/lease_agents`;

/** One operation of the `ops` agent. */
export type Op = Record<string, unknown> & { op: string };

/** One outcome of the `ops` agent. */
export type OpOutcome =
  | { ok: true; value: unknown }
  | { error: { name: string; code: string | null; message: string } };

/** A finished job. */
export interface Ran {
  /** `job.accepted`. */
  accepted: Env;
  /** Every envelope of the job, terminal last. */
  envelopes: Env[];
  /** The terminal envelope. */
  terminal: Env;
  /** The `job.event` payloads, in order. */
  events: Array<{ kind: string; body: Record<string, unknown> }>;
}

/**
 * Submits a job and collects it to its terminal; the submit must be accepted.
 *
 * @param c a welcomed client
 * @param payload the submit payload
 * @returns the job
 */
export async function run(c: WsClient, payload: Record<string, unknown>): Promise<Ran> {
  const accepted = await c.submit(payload);
  equal(accepted.type, "job.accepted", JSON.stringify(accepted.payload));
  const envelopes = await c.untilTerminal(accepted.job_id!, 30_000);
  return {
    accepted,
    envelopes,
    terminal: envelopes.at(-1)!,
    events: envelopes.filter((e) => e.type === "job.event").map((e) => e.payload),
  };
}

/**
 * Runs the `ops` agent and returns its outcomes; the job must succeed.
 *
 * @param c a welcomed client
 * @param lease the lease request
 * @param ops the operations
 * @param extra more submit fields
 * @returns the job and one outcome per op
 */
export async function runOps(
  c: WsClient,
  lease: Record<string, string[]>,
  ops: Op[],
  extra: Record<string, unknown> = {},
): Promise<Ran & { outcomes: OpOutcome[] }> {
  const ran = await run(c, { agent: "ops", input: { ops }, lease_request: lease, ...extra });
  equal(ran.terminal.type, "job.result", JSON.stringify(ran.terminal.payload));
  const outcomes = ran.terminal.payload.result as OpOutcome[];
  equal(outcomes.length, ops.length);
  return { ...ran, outcomes };
}

/**
 * The value of a successful outcome; fails the test otherwise.
 *
 * @param o the outcome
 * @param what which op, for the message
 * @returns its value
 */
export function value(o: OpOutcome, what = "op"): unknown {
  if (!("ok" in o)) throw new Error(`${what} failed: ${JSON.stringify(o.error)}`);
  return o.value;
}

/**
 * The error of a failed outcome, as `name code`; fails the test when the op succeeded.
 *
 * @param o the outcome
 * @param what which op, for the message
 * @returns e.g. `LeaseError PERMISSION_DENIED`
 */
export function failure(o: OpOutcome, what = "op"): string {
  if (!("error" in o)) throw new Error(`${what} succeeded: ${JSON.stringify(o.value)}`);
  return `${o.error.name} ${o.error.code}`;
}

/**
 * The `tool_result` error codes a job's events carry, in order.
 *
 * @param ran the job
 * @returns the codes
 */
export function toolErrors(ran: Ran): string[] {
  return ran.events
    .filter((e) => e.kind === "tool_result" && e.body.error)
    .map((e) => (e.body.error as { code: string }).code);
}

/**
 * The `cost.budget.remaining` metrics of a job, as `[unit, value]`.
 *
 * @param ran the job
 * @returns the reports in order
 */
export function remainingReports(ran: Ran): Array<[string, number]> {
  return ran.events
    .filter((e) => e.kind === "metric" && e.body.name === "cost.budget.remaining")
    .map((e) => [e.body.unit as string, e.body.value as number]);
}
