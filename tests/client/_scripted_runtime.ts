/**
 * A scripted stand-in for a runtime: a real WebSocket endpoint on a free
 * loopback port whose every reply the test writes by hand, for the protocol
 * situations a correct runtime never produces on demand (a gap in
 * `event_seq`, out-of-order answers, a dropped socket mid-job).
 *
 * @module
 */
import { serveLoopback } from "../../testing/loopback.ts";

/** An envelope as the client sent it. */
export type Sent = {
  arcp: string;
  id: string;
  type: string;
  session_id?: string;
  job_id?: string;
  trace_id?: string;
  // deno-lint-ignore no-explicit-any
  payload: any;
};

/** The session id the scripted runtime welcomes with. */
export const SESSION = "sess_SCRIPTED";

/** A running scripted runtime. */
export interface ScriptedRuntime {
  /** `ws://127.0.0.1:PORT/arcp`. */
  url: string;
  /**
   * Waits for the client's next envelope of a type.
   *
   * @param type the message type
   * @returns the envelope
   */
  next(type: string): Promise<Sent>;
  /**
   * Sends raw text to the connected client.
   *
   * @param text the frame
   */
  sendRaw(text: string): void;
  /**
   * Sends an envelope (arcp, id and session_id filled in unless given).
   *
   * @param type message type
   * @param payload payload
   * @param extra more envelope fields
   */
  send(type: string, payload: unknown, extra?: Record<string, unknown>): void;
  /**
   * Answers the pending hello with a welcome.
   *
   * @param features the negotiated features
   * @param sessionId the session id
   * @returns the hello it answered
   */
  welcome(features?: string[], sessionId?: string): Promise<Sent>;
  /**
   * Answers a submit with `job.accepted` for an `echo@1.0.0` job.
   *
   * @param submit the submit it answers
   * @param jobId the job id to accept it as
   */
  accept(submit: Sent, jobId?: string): void;
  /** Closes the client's socket from the runtime side. */
  drop(): void;
  /** Stops the endpoint. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts a scripted runtime; it serves one connection at a time.
 *
 * @returns the runtime
 */
export function startScriptedRuntime(): ScriptedRuntime {
  let socket: WebSocket | undefined;
  let closed: Promise<void> = Promise.resolve();
  const inbox: Sent[] = [];
  let wake: (() => void) | undefined;
  let counter = 0;

  const server = serveLoopback((req) => {
    const upgraded = Deno.upgradeWebSocket(req);
    socket = upgraded.socket;
    const done = Promise.withResolvers<void>();
    closed = done.promise;
    socket.onclose = () => done.resolve();
    socket.onmessage = (e) => {
      inbox.push(JSON.parse(String(e.data)));
      wake?.();
    };
    return upgraded.response;
  });
  const port = server.port;

  const runtime: ScriptedRuntime = {
    url: `ws://127.0.0.1:${port}/arcp`,
    async next(type) {
      while (true) {
        const i = inbox.findIndex((e) => e.type === type);
        if (i >= 0) return inbox.splice(i, 1)[0];
        await new Promise<void>((r) => wake = r);
      }
    },
    sendRaw(text) {
      socket!.send(text);
    },
    send(type, payload, extra = {}) {
      socket!.send(JSON.stringify({
        arcp: "1.1",
        id: `s${counter++}`,
        type,
        session_id: SESSION,
        ...extra,
        payload,
      }));
    },
    async welcome(features = ["list_jobs", "subscribe", "ack"], sessionId = SESSION) {
      const hello = await runtime.next("session.hello");
      runtime.send("session.welcome", {
        runtime: { name: "scripted", version: "0" },
        resume_token: "rt_next",
        resume_window_sec: 60,
        capabilities: {
          encodings: ["json"],
          features,
          agents: [{ name: "echo", versions: ["1.0.0"], default: "1.0.0" }],
        },
      }, { session_id: sessionId });
      return hello;
    },
    accept(submit, jobId = "job_1") {
      runtime.send("job.accepted", {
        job_id: jobId,
        agent: "echo@1.0.0",
        lease: {},
        accepted_at: "2026-01-01T00:00:00Z",
        trace_id: submit.trace_id,
      }, { job_id: jobId, trace_id: submit.trace_id });
    },
    drop() {
      socket?.close(1011, "scripted drop");
    },
    async [Symbol.asyncDispose]() {
      if (socket && socket.readyState < WebSocket.CLOSING) socket.close();
      await closed;
      await server.close();
    },
  };
  return runtime;
}
