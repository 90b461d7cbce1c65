/**
 * The W3C trace context an agent's `ctx.fetch` carries (ARCP §5.9, W3C
 * Trace Context): every request names the job's trace and the job's span as
 * its parent, so an upstream that traces (a model gateway) joins the job's
 * trace. Kept free of dependencies: it runs inside the worker.
 *
 * @module
 */

const HEX16 = /^[0-9a-f]{16}$/;

/**
 * The `traceparent` header value of a job.
 *
 * @param traceId the job's 32-hex trace id
 * @param spanId the job's span id; a fresh one when absent or malformed
 * @returns `00-<trace-id>-<span-id>-01`
 */
export function traceparentOf(traceId: string, spanId: string | undefined): string {
  return `00-${traceId}-${spanId && HEX16.test(spanId) ? spanId : freshSpanId()}-01`;
}

/**
 * A request's headers with `traceparent` set, unless the agent set its own.
 *
 * @param headers the agent's headers
 * @param traceparent the job's value
 * @returns the headers to send
 */
export function withTraceparent(headers: HeadersInit | undefined, traceparent: string): Headers {
  const out = new Headers(headers);
  if (!out.has("traceparent")) out.set("traceparent", traceparent);
  return out;
}

function freshSpanId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  bytes[7] |= 1; // never all zeros, which W3C forbids
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
