/**
 * A client of the management API for tests: real HTTP to a real server.
 *
 * @module
 */
import type { WsClient } from "../../testing/ws_client.ts";

/** An answer of the API. */
export interface Answer {
  /** HTTP status. */
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/**
 * Calls the API.
 *
 * @param base `http://127.0.0.1:PORT`
 * @param path under the base, e.g. `/v1/jobs`
 * @param token bearer token, or undefined for none
 * @param init method and body
 * @returns status and parsed JSON body
 */
export async function call(
  base: string,
  path: string,
  token: string | undefined,
  init: { method?: string; body?: unknown } = {},
): Promise<Answer> {
  const res = await fetch(base + path, {
    method: init.method ?? "GET",
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(init.body !== undefined ? { "content-type": "application/json" } : {}),
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** One Server-Sent Event. */
export interface SseMessage {
  /** Its `id:`. */
  id?: string;
  /** Its `event:`. */
  event?: string;
  /** Its `data:`, parsed. */
  // deno-lint-ignore no-explicit-any
  data: any;
}

/**
 * Reads a job's event stream to its end.
 *
 * @param base the server
 * @param jobId the job
 * @param token bearer token
 * @param headers more request headers (`Last-Event-ID`)
 * @param query the query string (`?after=N`)
 * @returns the messages (comments left out), in order
 */
export async function readSse(
  base: string,
  jobId: string,
  token: string,
  headers: Record<string, string> = {},
  query = "",
): Promise<SseMessage[]> {
  const res = await fetch(`${base}/v1/jobs/${jobId}/events${query}`, {
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream", ...headers },
  });
  if (res.status !== 200) throw new Error(`SSE answered ${res.status}: ${await res.text()}`);
  const text = await res.text();
  return text.split("\n\n").filter((block) => block.trim() && !block.startsWith(":")).map(
    (block) => {
      const m: SseMessage = { data: undefined };
      for (const line of block.split("\n")) {
        const at = line.indexOf(": ");
        const [field, value] = [line.slice(0, at), line.slice(at + 2)];
        if (field === "id") m.id = value;
        else if (field === "event") m.event = value;
        else if (field === "data") m.data = JSON.parse(value);
      }
      return m;
    },
  );
}

/**
 * Waits for a job's first `progress` event on a session.
 *
 * @param c the session
 * @param jobId the job
 * @returns resolves once one arrived
 */
export async function firstProgress(c: WsClient, jobId: string): Promise<void> {
  await c.next(
    (e) => e.job_id === jobId && e.type === "job.event" && e.payload.kind === "progress",
    15_000,
    "first progress",
  );
}

/**
 * Waits for a job to report running.
 *
 * @param c the session
 * @param jobId the job
 * @returns resolves once its `status {phase: "running"}` arrived
 */
export async function running(c: WsClient, jobId: string): Promise<void> {
  await c.next(
    (e) =>
      e.job_id === jobId && e.type === "job.event" && e.payload.kind === "status" &&
      e.payload.body?.phase === "running",
    15_000,
    "running",
  );
}
