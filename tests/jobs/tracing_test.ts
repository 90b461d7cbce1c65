/**
 * Trace propagation: trace ids on envelopes and, with Deno's OpenTelemetry
 * export on, job spans received by a loopback OTLP/HTTP (JSON) collector.
 */
import { equal, ok } from "assert";
import { startChildServer, startServer } from "../../testing/server.ts";
import { connect } from "../../testing/ws_client.ts";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: Array<{ key: string; value: { stringValue?: string } }>;
}

function spansOf(bodies: string[]): OtlpSpan[] {
  const out: OtlpSpan[] = [];
  for (const body of bodies) {
    const doc = JSON.parse(body);
    for (const rs of doc.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) out.push(...(ss.spans ?? []));
    }
  }
  return out;
}

function attr(span: OtlpSpan, key: string): string | undefined {
  return span.attributes.find((a) => a.key === key)?.value.stringValue;
}

Deno.test("the submit's trace_id rides on every envelope of the job, and a minted one when absent", async () => {
  await using server = await startServer();
  await using c = await connect(server.url);
  const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const acc = await c.submit({ agent: "ticker", input: { count: 3, interval_ms: 1 } }, {
    trace_id: trace,
  });
  equal(acc.payload.trace_id, trace);
  for (const e of await c.untilTerminal(acc.job_id!)) equal(e.trace_id, trace);
  c.send("job.submit", { agent: "echo", input: 1 });
  const other = await c.next((e) => e.type === "job.accepted" && e.job_id !== acc.job_id);
  ok(/^[0-9a-f]{32}$/.test(other.payload.trace_id));
  equal(other.trace_id, other.payload.trace_id);
});

Deno.test("with OTEL_DENO=true each job is a span in its own trace, and a delegated job is a child span", async () => {
  const bodies: string[] = [];
  const ac = new AbortController();
  const collector = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    async (req) => {
      if (new URL(req.url).pathname === "/v1/traces") bodies.push(await req.text());
      else await req.body?.cancel();
      return Response.json({});
    },
  );
  const dir = await Deno.makeTempDir({ prefix: "arcp_otel_" });
  const env = {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.addr.port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_DENO_CONSOLE: "ignore",
  };
  const child = await startChildServer(`${dir}/arcp.kv`, [], env);
  try {
    const c = await connect(child.url);
    const trace = "0af7651916cd43dd8448eb211c80319c";
    const acc = await c.submit({
      agent: "delegator",
      input: { agent: "echo", input: "hi" },
      lease_request: { "agent.delegate": ["echo"] },
    }, { trace_id: trace });
    const events = await c.untilTerminal(acc.job_id!);
    equal(events.at(-1)!.type, "job.result");
    const childAccepted = await c.next((e) =>
      e.type === "job.accepted" && e.payload.parent_job_id === acc.job_id
    );
    await c.close();
    // SIGTERM lets the runtime shut down, which flushes pending spans.
    await child.stop("SIGTERM");
    const spans = spansOf(bodies);
    const parent = spans.find((s) => attr(s, "arcp.job_id") === acc.job_id);
    const kid = spans.find((s) => attr(s, "arcp.job_id") === childAccepted.job_id);
    ok(parent, `no span for the parent job among ${spans.length} spans`);
    ok(kid, "no span for the delegated job");
    equal(parent.traceId, trace);
    equal(kid.traceId, trace);
    equal(kid.parentSpanId, parent.spanId);
    equal(attr(parent, "arcp.agent"), "delegator@1.0.0");
    equal(attr(parent, "arcp.session_id"), c.sessionId);
  } finally {
    await child.stop("SIGKILL").catch(() => {});
    ac.abort();
    await collector.finished;
    await Deno.remove(dir, { recursive: true });
  }
});
