import { deepEqual, equal, match } from "assert";
import { context, INVALID_SPAN_CONTEXT, trace } from "@opentelemetry/api";
import { startJobSpan } from "./tracing.ts";
import { jobRecord } from "../../testing/job_record.ts";

const job = (traceId: string) => jobRecord({ status: "running", trace_id: traceId });

// No tracer is registered in a test process: spans must be what the API's no-op tracer makes.
Deno.test("without a tracer a job's span is the no-op tracer's, rooted in the job's trace", () => {
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const root = startJobSpan(job(traceId));
  const ctx = root.span.spanContext();
  match(ctx.spanId, /^[0-9a-f]{15}[13579bdf]$/);
  const viaApi = trace.getTracer("t").startSpan(
    "x",
    {},
    trace.setSpanContext(context.active(), { ...ctx }),
  );
  deepEqual(ctx, viaApi.spanContext());
  equal(root.span.isRecording(), false);
  // A delegated job's span carries its parent's context, as the no-op tracer's does.
  const child = startJobSpan(job(traceId), root);
  deepEqual(child.span.spanContext(), ctx);
  root.end(job(traceId));
  child.end(job(traceId));
});

Deno.test("without a tracer a trace id OpenTelemetry calls invalid gives the invalid span context", () => {
  const span = startJobSpan(job("0".repeat(32)));
  deepEqual(span.span.spanContext(), INVALID_SPAN_CONTEXT);
});
