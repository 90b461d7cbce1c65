/**
 * One line of text per job event, for `arcp submit`.
 *
 * @module
 */
import type { JobEventPayload } from "../client/payloads.ts";
import { EVENT_BODIES } from "../protocol/events.ts";

/**
 * Describes a job event in one line: its kind, then what matters in its body.
 * A vendor kind, or a body that does not fit its kind, is shown as JSON.
 *
 * @param event the `job.event` payload
 * @returns the line, without a newline
 * @example
 * ```ts
 * import { eventLine } from "./event_line.ts";
 * eventLine({ kind: "progress", ts: "", body: { current: 2, total: 5, units: "ticks" } });
 * // "progress: 2/5 ticks"
 * ```
 */
export function eventLine(event: JobEventPayload): string {
  return `${event.kind}: ${describeBody(event) ?? JSON.stringify(event.body)}`.replace(
    /[\r\n]+/g,
    " ",
  );
}

function describeBody({ kind, body }: JobEventPayload): string | undefined {
  switch (kind) {
    case "log": {
      const b = EVENT_BODIES.log.safeParse(body).data;
      return b && `[${b.level}] ${b.message}`;
    }
    case "thought":
      return EVENT_BODIES.thought.safeParse(body).data?.text;
    case "status": {
      const b = EVENT_BODIES.status.safeParse(body).data;
      return b && b.phase + (b.message ? ` (${b.message})` : "");
    }
    case "progress": {
      const b = EVENT_BODIES.progress.safeParse(body).data;
      return b && [
        b.total === undefined ? `${b.current}` : `${b.current}/${b.total}`,
        b.units,
        b.message,
      ].filter((part) => part !== undefined && part !== "").join(" ");
    }
    case "metric": {
      const b = EVENT_BODIES.metric.safeParse(body).data;
      return b && `${b.name} = ${b.value}${b.unit ? ` ${b.unit}` : ""}`;
    }
    case "tool_call": {
      const b = EVENT_BODIES.tool_call.safeParse(body).data;
      return b && `${b.tool} (${b.call_id})`;
    }
    case "tool_result": {
      const b = EVENT_BODIES.tool_result.safeParse(body).data;
      if (!b) return undefined;
      return "error" in b
        ? `${b.call_id} failed: ${b.error.code}: ${b.error.message}`
        : `${b.call_id} ok`;
    }
    case "artifact_ref": {
      const b = EVENT_BODIES.artifact_ref.safeParse(body).data;
      return b &&
        `${b.uri} (${b.content_type}${b.byte_size === undefined ? "" : `, ${b.byte_size} bytes`})`;
    }
    case "delegate": {
      const b = EVENT_BODIES.delegate.safeParse(body).data;
      return b && `${b.agent} (${b.delegate_id})`;
    }
    case "result_chunk": {
      const b = EVENT_BODIES.result_chunk.safeParse(body).data;
      return b && `${b.result_id} #${b.chunk_seq}${b.more ? "" : " (last)"}`;
    }
  }
  return undefined;
}
