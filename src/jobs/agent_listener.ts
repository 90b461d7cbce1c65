/**
 * What a running agent sends back, turned into the job's envelopes: events
 * (cost metrics charged to the job's budget and every ancestor's), streamed
 * result chunks, its return, its failure, and its calls.
 *
 * @module
 */
import { ArcpError, toArcpError } from "../protocol/errors.ts";
import type { AgentEvent, SandboxListener } from "../sandbox/sandbox.ts";
import { ResultStream } from "./result_stream.ts";
import type { JobLimits } from "./limits.ts";
import { cancelled, type EndJob, type LiveJob } from "./live_job.ts";
import type { EmitEvent } from "./fanout.ts";

/**
 * Metric names only the runtime reports (`cost.budget.remaining` and any
 * other `cost.budget.*`): not spend, and not the agent's to forge.
 */
const RUNTIME_METRIC = /^cost\.budget(\.|$)/;

/** What listening to agents needs of the jobs layer. */
export interface AgentListenerPort {
  /** Emits a `job.event`. */
  event: EmitEvent;
  /** Emits `job.event`s in order, staged together. */
  events(live: LiveJob, items: readonly AgentEvent[]): Promise<void>;
  /**
   * Serves a request the agent makes of the runtime.
   *
   * @param live the calling job
   * @param op what it asks for
   * @param args the request's arguments
   * @returns what the agent gets back
   */
  call(live: LiveJob, op: string, args: Record<string, unknown>): Promise<unknown>;
  /** Ends a job. */
  end: EndJob;
}

/** Builds the sandbox listener of each job. */
export class AgentListener {
  #port: AgentListenerPort;
  #limits: JobLimits;

  /**
   * @param port how to emit, serve calls and end jobs
   * @param limits tunables (result stream caps)
   */
  constructor(port: AgentListenerPort, limits: JobLimits) {
    this.#port = port;
    this.#limits = limits;
  }

  /**
   * The listener of one job's agent.
   *
   * @param live the job
   * @returns where its sandbox reports
   */
  for(live: LiveJob): SandboxListener {
    return {
      onEvents: (items) => this.#agentEvents(live, items),
      onChunk: (data, encoding) => this.#chunk(live, data, encoding),
      onChunkEnd: () => this.#chunkEnd(live),
      onCall: (op, args) => this.#port.call(live, op, args),
      onResult: (result) => this.#finish(live, result),
      onError: (error) =>
        this.#port.end(
          live,
          live.cancelling ? cancelled(live) : { status: "error", error: this.#blame(live, error) },
        ),
    };
  }

  /**
   * A job whose upstream refused for budget failed for that reason (§9.6),
   * even when the agent turned the refusal into an error of its own.
   */
  #blame(live: LiveJob, error: ArcpError): ArcpError {
    if (!live.upstreamBudget || error.code !== "INTERNAL_ERROR") return error;
    return new ArcpError("BUDGET_EXHAUSTED", `upstream budget exhausted (${live.upstreamBudget})`);
  }

  /** The agent returned: a streamed result must not also come inline. Settles once the end is out. */
  #finish(live: LiveJob, result: unknown): Promise<void> {
    if (live.cancelling) return this.#port.end(live, cancelled(live));
    if (live.stream) {
      if (result !== null) {
        return this.#port.end(live, {
          status: "error",
          error: new ArcpError(
            "INTERNAL_ERROR",
            "agent returned an inline result after streaming result chunks",
          ),
        });
      }
      if (!live.stream.ended) this.#chunkEnd(live);
    }
    return this.#port.end(live, { status: "success", result });
  }

  /** One piece of the streamed result; the piece before it goes out now that `more` is known. */
  #chunk(live: LiveJob, data: string, encoding: "utf8" | "base64"): Promise<void> {
    if (live.ended) return Promise.resolve();
    try {
      const ready = this.#stream(live).push(data, encoding);
      return ready ? this.#port.event(live, "result_chunk", ready) : Promise.resolve();
    } catch (err) {
      this.#port.end(live, { status: "error", error: toArcpError(err) });
      return Promise.resolve();
    }
  }

  #chunkEnd(live: LiveJob): void {
    if (live.ended) return;
    const stream = this.#stream(live);
    if (stream.ended) return;
    this.#port.event(live, "result_chunk", stream.end());
  }

  #stream(live: LiveJob): ResultStream {
    return live.stream ??= new ResultStream({
      chunkBytes: this.#limits.resultChunkBytes,
      totalBytes: this.#limits.resultTotalBytes,
    });
  }

  /**
   * Events from the agent, in order: runs of plain events are emitted
   * together; a metric goes on its own, since it may charge the budget.
   */
  #agentEvents(live: LiveJob, items: readonly AgentEvent[]): Promise<void> {
    let last: Promise<void> = Promise.resolve();
    let from = 0;
    for (let i = 0; i <= items.length; i++) {
      if (i < items.length && items[i][0] !== "metric") continue;
      if (live.ended) return Promise.resolve();
      // Commits settle in order, so the last promise settles after every earlier one.
      // A run of the whole message, the usual case, goes without a copy.
      if (i > from) {
        last = this.#port.events(live, i - from === items.length ? items : items.slice(from, i));
      }
      if (i < items.length) last = this.#agentEvent(live, "metric", items[i][1]);
      from = i + 1;
    }
    return last;
  }

  /**
   * An event from the agent. A cost metric updates the budget before this
   * returns, so the agent's next operation is checked against the new counters.
   */
  #agentEvent(live: LiveJob, kind: string, body: Record<string, unknown>): Promise<void> {
    if (live.ended) return Promise.resolve();
    if (kind !== "metric") return this.#port.event(live, kind, body);
    if (RUNTIME_METRIC.test(String(body.name))) {
      // Reports of the budget are the runtime's: an agent's is renamed, never charged.
      return this.#port.event(live, kind, { ...body, name: `agent.${body.name}` });
    }
    const remaining = this.#charge(live, body);
    // Cost reported by a delegated job is charged to every live ancestor too.
    for (let p = live.parent; p; p = p.parent) {
      if (p.ended) continue;
      const left = this.#charge(p, body);
      if (left) this.#port.event(p, "metric", left);
    }
    const emitted = this.#port.event(live, kind, body);
    return remaining ? this.#port.event(live, "metric", remaining) : emitted;
  }

  /**
   * Applies a cost metric to a job's budget.
   *
   * @returns the `cost.budget.remaining` metric to emit, when the metric was a cost
   */
  #charge(live: LiveJob, body: Record<string, unknown>): Record<string, unknown> | undefined {
    if (!live.budget) return undefined;
    const report = live.budget.applyMetric(
      String(body.name),
      Number(body.value),
      body.unit as string | undefined,
    );
    live.record.budget_remaining = live.budget.toStored();
    return report && { name: "cost.budget.remaining", value: report.value, unit: report.currency };
  }
}
