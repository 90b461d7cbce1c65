import { equal, throws } from "assert";
import { Metrics } from "./metrics.ts";

Deno.test("counters and gauges render in the Prometheus text format", () => {
  const metrics = new Metrics();
  const dropped = metrics.counter("arcp_dropped_total", "Sessions dropped.", ["reason"]);
  const plain = metrics.counter("arcp_plain_total", "An unlabelled count.");
  dropped.inc({ reason: "socket_gone" }, 0);
  dropped.inc({ reason: "heartbeat_lost" });
  dropped.inc({ reason: "heartbeat_lost" });
  plain.inc();
  let live = 3;
  metrics.gauge("arcp_live", "Live things.", () => live);
  metrics.gauge("arcp_by_kind", "Things by kind.", () => [[{ kind: "a" }, 1], [{ kind: "b" }, 0]]);
  live = 4;
  equal(
    metrics.render(),
    [
      "# HELP arcp_dropped_total Sessions dropped.",
      "# TYPE arcp_dropped_total counter",
      'arcp_dropped_total{reason="socket_gone"} 0',
      'arcp_dropped_total{reason="heartbeat_lost"} 2',
      "# HELP arcp_plain_total An unlabelled count.",
      "# TYPE arcp_plain_total counter",
      "arcp_plain_total 1",
      "# HELP arcp_live Live things.",
      "# TYPE arcp_live gauge",
      "arcp_live 4",
      "# HELP arcp_by_kind Things by kind.",
      "# TYPE arcp_by_kind gauge",
      'arcp_by_kind{kind="a"} 1',
      'arcp_by_kind{kind="b"} 0',
      "",
    ].join("\n"),
  );
  equal(dropped.value({ reason: "heartbeat_lost" }), 2);
  equal(dropped.value({ reason: "never" }), 0);
  equal(metrics.render().includes("never"), false, "reading a count made a series");
});

Deno.test("label values are escaped; label sets keep their declared order", () => {
  const metrics = new Metrics();
  const c = metrics.counter("x_total", "Help with a \\ and\na newline.", ["a", "b"]);
  c.inc({ b: 'quote " and \\ and\nnewline', a: "first" });
  equal(
    metrics.render().split("\n").slice(0, 3).join("\n"),
    [
      "# HELP x_total Help with a \\\\ and\\na newline.",
      "# TYPE x_total counter",
      'x_total{a="first",b="quote \\" and \\\\ and\\nnewline"} 1',
    ].join("\n"),
  );
});

Deno.test("misuse is refused: bad names, a name twice, wrong labels, a counter going down", () => {
  const metrics = new Metrics();
  throws(() => metrics.counter("bad-name", "x"), TypeError);
  throws(() => metrics.counter("ok_total", "x", ["bad-label"]), TypeError);
  const c = metrics.counter("ok_total", "x", ["reason"]);
  throws(() => metrics.gauge("ok_total", "x", () => 1), /already declared/);
  throws(() => c.inc({}), /do not match/);
  throws(() => c.inc({ reason: "a", other: "b" }), /do not match/);
  throws(() => c.inc({ reason: "a" }, -1), RangeError);
});
