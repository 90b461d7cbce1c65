import { equal, match, rejects, throws } from "assert";
import { Metrics } from "./metrics.ts";

Deno.test("counters, gauges and histograms render in the Prometheus text format", async () => {
  const metrics = new Metrics();
  const dropped = metrics.counter("arcp_dropped_total", "Sessions dropped.", ["reason"]);
  const plain = metrics.counter("arcp_plain_total", "An unlabelled count.");
  dropped.inc({ reason: "socket_gone" }, 0);
  dropped.inc({ reason: "heartbeat_lost" });
  dropped.inc({ reason: "heartbeat_lost" });
  plain.inc();
  let live = 3;
  metrics.gauge("arcp_live", "Live things.", () => live);
  let kinds: Array<[Record<string, string>, number]> = [[{ kind: "a" }, 1], [{ kind: "b" }, 0]];
  metrics.gauge("arcp_by_kind", "Things by kind.", () => kinds, ["kind"]);
  const latency = metrics.histogram("arcp_latency_seconds", "How long.", [0.1, 1]);
  latency.observe(0.05);
  latency.observe(0.5);
  live = 4;
  equal(
    await metrics.render(),
    [
      "# HELP arcp_dropped_total Sessions dropped.",
      "# TYPE arcp_dropped_total counter",
      'arcp_dropped_total{reason="socket_gone"} 0',
      'arcp_dropped_total{reason="heartbeat_lost"} 2',
      "",
      "# HELP arcp_plain_total An unlabelled count.",
      "# TYPE arcp_plain_total counter",
      "arcp_plain_total 1",
      "",
      "# HELP arcp_live Live things.",
      "# TYPE arcp_live gauge",
      "arcp_live 4",
      "",
      "# HELP arcp_by_kind Things by kind.",
      "# TYPE arcp_by_kind gauge",
      'arcp_by_kind{kind="a"} 1',
      'arcp_by_kind{kind="b"} 0',
      "",
      "# HELP arcp_latency_seconds How long.",
      "# TYPE arcp_latency_seconds histogram",
      'arcp_latency_seconds_bucket{le="0.1"} 1',
      'arcp_latency_seconds_bucket{le="1"} 2',
      'arcp_latency_seconds_bucket{le="+Inf"} 2',
      "arcp_latency_seconds_sum 0.55",
      "arcp_latency_seconds_count 2",
      "",
    ].join("\n"),
  );
  // A label set the gauge no longer reports vanishes instead of keeping its last value.
  kinds = [[{ kind: "b" }, 2]];
  const after = await metrics.render();
  equal(after.includes('arcp_by_kind{kind="a"}'), false);
  match(after, /arcp_by_kind\{kind="b"\} 2/);
});

Deno.test("label values are escaped", async () => {
  const metrics = new Metrics();
  const c = metrics.counter("x_total", "Help with a \\ and\na newline.", ["a", "b"]);
  c.inc({ b: 'quote " and \\ and\nnewline', a: "first" });
  equal(
    (await metrics.render()).split("\n").slice(0, 3).join("\n"),
    [
      "# HELP x_total Help with a \\\\ and\\na newline.",
      "# TYPE x_total counter",
      'x_total{b="quote \\" and \\\\ and\\nnewline",a="first"} 1',
    ].join("\n"),
  );
});

Deno.test("misuse is refused: bad names, a name twice, an undeclared label, a counter going down", async () => {
  const metrics = new Metrics();
  throws(() => metrics.counter("bad-name", "x"));
  throws(() => metrics.counter("ok_total", "x", ["bad-label"]));
  const c = metrics.counter("ok_total", "x", ["reason"]);
  throws(() => metrics.gauge("ok_total", "x", () => 1), /already been registered/);
  throws(() => c.inc({ reason: "a", other: "b" }), /not included in initial labelset/);
  throws(() => c.inc({ reason: "a" }, -1), /not possible to decrease a counter/);
  metrics.gauge("broken", "x", () => [[{ undeclared: "x" }, 1]]);
  await rejects(() => metrics.render(), /not included in initial labelset/);
});

Deno.test("every update is counted, on the first label set and later ones, and afresh after a reset", async () => {
  const metrics = new Metrics();
  const plain = metrics.counter("p_total", "Plain.");
  const byKind = metrics.counter("k_total", "By kind.", ["kind"]);
  const latency = metrics.histogram("l_seconds", "Latency.", [0.1, 1], ["op"]);
  const bare = metrics.histogram("b_seconds", "Bare.", [1]);
  for (let i = 0; i < 3; i++) {
    plain.inc();
    byKind.inc({ kind: "a" }, 2);
    byKind.inc({ kind: "b" });
    latency.observe(0.05, { op: "x" });
    latency.observe(5, { op: "x" });
    bare.observe(0.5);
  }
  const text = await metrics.render();
  for (
    const line of [
      "p_total 3",
      'k_total{kind="a"} 6',
      'k_total{kind="b"} 3',
      'l_seconds_bucket{le="0.1",op="x"} 3',
      'l_seconds_bucket{le="1",op="x"} 3',
      'l_seconds_bucket{le="+Inf",op="x"} 6',
      'l_seconds_sum{op="x"} 15.15',
      'l_seconds_count{op="x"} 6',
      'b_seconds_bucket{le="1"} 3',
      "b_seconds_count 3",
    ]
  ) equal(text.split("\n").includes(line), true, `${line} in\n${text}`);
  metrics.registry.resetMetrics();
  byKind.inc({ kind: "a" });
  latency.observe(0.5, { op: "x" });
  const after = await metrics.render();
  match(after, /k_total\{kind="a"\} 1\n/);
  match(after, /l_seconds_count\{op="x"\} 1\n/);
  // A label the counter was not declared with is refused, seen before or not.
  throws(() => byKind.inc({ kind: "a", other: "x" }));
  throws(() => byKind.inc({ kind: "a" }, -1));
});

Deno.test("a series removed through prom-client is made again by the next update", async () => {
  const metrics = new Metrics();
  const byKind = metrics.counter("r_total", "Removed.", ["kind"]);
  byKind.inc({ kind: "a" });
  byKind.inc({ kind: "a" });
  const prom = metrics.registry.getSingleMetric("r_total") as unknown as {
    remove(labels: Record<string, string>): void;
  };
  prom.remove({ kind: "a" });
  byKind.inc({ kind: "a" });
  match(await metrics.render(), /r_total\{kind="a"\} 1\n/);
});
