/**
 * OpenTelemetry spans for jobs. With Deno's built-in OpenTelemetry export
 * enabled (`OTEL_DENO=true`), every job is a span in the job's own trace
 * (its ARCP `trace_id`), delegated jobs are child spans of their parent's,
 * and the span carries `arcp.session_id`, `arcp.job_id`, `arcp.agent`,
 * `arcp.lease.expires_at` and `arcp.budget.remaining`. Without it the
 * OpenTelemetry API is a no-op and this costs next to nothing.
 *
 * @module
 */
import {
  context,
  INVALID_SPAN_CONTEXT,
  isSpanContextValid,
  ProxyTracerProvider,
  type Span,
  type SpanContext,
  SpanStatusCode,
  trace,
  TraceFlags,
  type TracerProvider,
} from "@opentelemetry/api";
import type { JobRecord } from "../store/records.ts";

const tracer = trace.getTracer("arcp-runtime", "0.1.0");

/** Two hex digits of every byte value: a span id per job is made without a string per byte. */
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** Random bytes drawn in bulk: one CSPRNG call per 512 span ids instead of one per job. */
const pool = new Uint8Array(4096);
let poolAt = pool.length;

/** A random span id; its last bit set, so it is never the invalid all-zero id. */
function randomSpanId(): string {
  if (poolAt + 8 > pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  const i = poolAt;
  poolAt += 8;
  return HEX[pool[i]] + HEX[pool[i + 1]] + HEX[pool[i + 2]] + HEX[pool[i + 3]] +
    HEX[pool[i + 4]] + HEX[pool[i + 5]] + HEX[pool[i + 6]] + HEX[pool[i + 7] | 1];
}

/** The tracer provider {@linkcode tracingOff} last looked at, and whether it makes no spans. */
let lookedAt: TracerProvider | undefined;
let noop = false;

/**
 * Whether no tracer is registered, so every span would be the API's no-op
 * one: then a job's span is made as the no-op tracer makes it, without the
 * contexts and attributes nothing reads (a measurable part of a short
 * job's cost). A registered provider (Deno's export, an embedder's) is
 * asked once whether its spans are real: a root span's ids are valid.
 */
function tracingOff(): boolean {
  const global = trace.getTracerProvider();
  const provider = global instanceof ProxyTracerProvider ? global.getDelegate() : global;
  if (provider !== lookedAt) {
    lookedAt = provider;
    noop = global instanceof ProxyTracerProvider &&
      provider.getTracer("arcp-runtime").startSpan("probe", { root: true }).spanContext()
          .traceId === INVALID_SPAN_CONTEXT.traceId;
  }
  return noop;
}

/** A job's span. */
export interface JobSpan {
  /** The underlying span, so children can nest under it. */
  readonly span: Span;
  /**
   * Ends the span with the job's outcome.
   *
   * @param job the job's final record
   */
  end(job: JobRecord): void;
}

function budgetText(job: JobRecord): string | undefined {
  const remaining = job.budget_remaining;
  if (!remaining) return undefined;
  return Object.entries(remaining).map(([c, v]) => `${c}:${v}`).join(",");
}

/**
 * Starts the span of a job.
 *
 * @param job the job's record (its `trace_id` becomes the span's trace)
 * @param parent the parent job's span, for a delegated job
 * @returns the span handle
 */
export function startJobSpan(job: JobRecord, parent?: JobSpan): JobSpan {
  if (tracingOff()) {
    // What the no-op tracer gives: a span of the parent's context, valid or not.
    const parentContext: SpanContext = parent ? parent.span.spanContext() : {
      traceId: job.trace_id,
      spanId: randomSpanId(),
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    };
    const span = trace.wrapSpanContext(
      isSpanContextValid(parentContext) ? parentContext : INVALID_SPAN_CONTEXT,
    );
    return { span, end() {} };
  }
  // The job's trace is the one the client named (or the runtime minted):
  // root the span in it through a remote parent with that trace id.
  const ctx = parent
    ? trace.setSpan(context.active(), parent.span)
    : trace.setSpanContext(context.active(), {
      traceId: job.trace_id,
      spanId: randomSpanId(),
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    });
  const span = tracer.startSpan(`arcp.job ${job.agent}`, {
    attributes: {
      "arcp.session_id": job.session_id,
      "arcp.job_id": job.job_id,
      "arcp.agent": job.agent,
      ...(job.lease_constraints?.expires_at
        ? { "arcp.lease.expires_at": job.lease_constraints.expires_at }
        : {}),
      ...(job.parent_job_id ? { "arcp.parent_job_id": job.parent_job_id } : {}),
    },
  }, ctx);
  return {
    span,
    end(final: JobRecord) {
      const budget = budgetText(final);
      if (budget !== undefined) span.setAttribute("arcp.budget.remaining", budget);
      span.setAttribute("arcp.final_status", final.status);
      if (final.error) {
        span.setAttribute("arcp.error.code", final.error.code);
        span.setStatus({ code: SpanStatusCode.ERROR, message: final.error.message });
      }
      span.end();
    },
  };
}
