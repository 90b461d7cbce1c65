/**
 * A raw WebSocket ARCP client for tests: sends envelopes exactly as given
 * and lets a test wait for whatever comes back. Deliberately independent of
 * `src/client`, so server tests do not trust the code they test.
 *
 * @module
 */
import { ALL_FEATURES as PROTOCOL_FEATURES } from "../src/protocol/features.ts";

/** An envelope as received. */
export type Env = {
  arcp: string;
  id: string;
  type: string;
  session_id?: string;
  job_id?: string;
  trace_id?: string;
  event_seq?: number;
  // deno-lint-ignore no-explicit-any
  payload: any;
};

/** Every feature flag a full client asks for: all that ARCP v1.1 defines. */
export const ALL_FEATURES: string[] = [...PROTOCOL_FEATURES];

let counter = 0;

/** Options of {@linkcode WsClient}. */
export interface WsClientOptions {
  /**
   * Answer every `session.ping` with a `session.pong` (default true). Turn
   * it off to play a client that has gone silent.
   */
  autoPong?: boolean;
}

/**
 * A fresh W3C trace id.
 *
 * @returns 32 hex chars
 */
export function traceId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** One raw connection. */
export class WsClient {
  /** The socket. */
  readonly ws: WebSocket;
  /** Envelopes received and not yet taken. */
  readonly inbox: Env[] = [];
  /** Every envelope received, in order. */
  readonly seen: Env[] = [];
  /** Session id after a welcome. */
  sessionId = "";
  /** The resume token of the latest welcome. */
  resumeToken = "";
  /** Close code once closed. */
  closeCode: number | undefined;
  #wake: Array<() => void> = [];
  #opened: Promise<void>;
  #closed: Promise<void>;

  /**
   * Opens a socket.
   *
   * @param url the server URL
   * @param options client behaviour
   */
  constructor(url: string, options: WsClientOptions = {}) {
    const autoPong = options.autoPong ?? true;
    this.ws = new WebSocket(url);
    this.#opened = new Promise((res, rej) => {
      this.ws.onopen = () => res();
      this.ws.onerror = () => rej(new Error("websocket error"));
    });
    this.#closed = new Promise((res) => {
      this.ws.onclose = (e) => {
        this.closeCode = e.code;
        this.#notify();
        res();
      };
    });
    this.ws.onmessage = (m) => {
      const env = JSON.parse(String(m.data)) as Env;
      if (env.type === "session.ping" && autoPong) {
        this.send("session.pong", {
          ping_nonce: env.payload.nonce,
          received_at: new Date().toISOString(),
        });
      }
      this.inbox.push(env);
      this.seen.push(env);
      this.#notify();
    };
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = [];
    for (const f of w) f();
  }

  /**
   * Waits for the socket to open.
   *
   * @returns resolves once open
   */
  opened(): Promise<void> {
    return this.#opened;
  }

  /**
   * Sends one envelope, filling in arcp, id and session_id.
   *
   * @param type message type
   * @param payload payload
   * @param extra more envelope fields (override the defaults)
   * @returns the envelope sent
   */
  send(
    type: string,
    payload: unknown,
    extra: Record<string, unknown> = {},
  ): Record<string, unknown> {
    const env: Record<string, unknown> = { arcp: "1.1", id: `t${counter++}`, type, payload };
    if (this.sessionId && type !== "session.hello") env.session_id = this.sessionId;
    Object.assign(env, extra);
    this.ws.send(JSON.stringify(env));
    return env;
  }

  /**
   * Sends raw text.
   *
   * @param text the frame
   */
  sendRaw(text: string): void {
    this.ws.send(text);
  }

  /**
   * Takes the first envelope matching `pred`, waiting up to `ms`.
   *
   * @param pred what to wait for
   * @param ms timeout
   * @param what description for the timeout error
   * @returns the envelope
   */
  async next(pred: (e: Env) => boolean, ms = 10_000, what = "message"): Promise<Env> {
    const deadline = Date.now() + ms;
    while (true) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      if (this.closeCode !== undefined) {
        throw new Error(`socket closed (${this.closeCode}) waiting for ${what}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out waiting for ${what}; inbox: ${JSON.stringify(this.inbox.map((e) => e.type))}`,
        );
      }
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.#wake.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  /**
   * Sends a hello and waits for the welcome or error.
   *
   * @param token bearer token
   * @param features features to ask for
   * @param resume resume block
   * @returns the welcome or session.error
   */
  async hello(
    token: string,
    features: string[] = ALL_FEATURES,
    resume?: Record<string, unknown>,
  ): Promise<Env> {
    await this.opened();
    this.send("session.hello", {
      client: { name: "test", version: "0" },
      auth: { scheme: "bearer", token },
      capabilities: { encodings: ["json"], features },
      ...(resume ? { resume } : {}),
    });
    const w = await this.next(
      (e) => e.type === "session.welcome" || e.type === "session.error",
      10_000,
      "welcome",
    );
    if (w.type === "session.welcome") {
      this.sessionId = w.session_id!;
      this.resumeToken = w.payload.resume_token;
    }
    return w;
  }

  /**
   * Submits a job with a fresh trace id and waits for its answer.
   *
   * @param payload the submit payload
   * @param extra more envelope fields
   * @returns `job.accepted` or `job.error`
   */
  async submit(
    payload: Record<string, unknown>,
    extra: Record<string, unknown> = {},
  ): Promise<Env> {
    const trace = (extra.trace_id as string) ?? traceId();
    this.send("job.submit", payload, { trace_id: trace, ...extra });
    return await this.next(
      (e) => (e.type === "job.accepted" || e.type === "job.error") && e.trace_id === trace,
      10_000,
      "submit answer",
    );
  }

  /**
   * Submits a job as an ARCP client should under load: a submit the sandbox
   * refuses before accepting it (`INTERNAL_ERROR`, retryable,
   * `details.cap: "sandbox_busy"`) is sent again 50 ms later, with a new trace
   * id, until it is answered otherwise or `ms` have passed.
   *
   * @param payload the submit payload
   * @param ms how long to keep resubmitting
   * @returns `job.accepted`, or the last `job.error`
   */
  async submitRetrying(payload: Record<string, unknown>, ms = 30_000): Promise<Env> {
    const deadline = Date.now() + ms;
    while (true) {
      const answer = await this.submit(payload);
      const busy = answer.type === "job.error" && answer.payload.retryable === true &&
        answer.payload.details?.cap === "sandbox_busy";
      if (!busy || Date.now() >= deadline) return answer;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Collects a job's envelopes until its terminal message.
   *
   * @param jobId the job
   * @param ms timeout
   * @returns the envelopes, terminal last
   */
  async untilTerminal(jobId: string, ms = 15_000): Promise<Env[]> {
    const out: Env[] = [];
    while (true) {
      const e = await this.next(
        (x) => x.job_id === jobId && x.type.startsWith("job."),
        ms,
        `terminal of ${jobId}`,
      );
      out.push(e);
      if (e.type === "job.result" || e.type === "job.error") return out;
    }
  }

  /**
   * Waits for the socket to close.
   *
   * @param ms timeout
   * @returns the close code, or undefined on timeout
   */
  async closed(ms = 5000): Promise<number | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#closed, new Promise((r) => timer = setTimeout(r, ms))]);
    clearTimeout(timer);
    return this.closeCode;
  }

  /** Closes the socket and waits for it. */
  async close(): Promise<void> {
    if (this.closeCode === undefined) {
      try {
        this.ws.close();
      } catch {
        // already closing
      }
      await this.closed();
    }
  }

  /** Same as close, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Opens a connection and says hello.
 *
 * @param url server URL
 * @param token bearer token
 * @param features features to ask for
 * @returns the client, welcomed
 */
export async function connect(
  url: string,
  token = "alice-token",
  features: string[] = ALL_FEATURES,
): Promise<WsClient> {
  const c = new WsClient(url);
  const w = await c.hello(token, features);
  if (w.type !== "session.welcome") throw new Error(`hello refused: ${JSON.stringify(w.payload)}`);
  return c;
}

/**
 * Opens a new connection and resumes a session from the envelope after
 * `lastEventSeq` (default 0: its whole log).
 *
 * @param url server URL
 * @param session the session's id and its latest resume token
 * @param token bearer token
 * @param lastEventSeq the last seq the client has
 * @returns the client, welcomed back
 * @throws {Error} when the resume is refused
 */
export async function resume(
  url: string,
  session: { sessionId: string; resumeToken: string },
  token = "alice-token",
  lastEventSeq = 0,
): Promise<WsClient> {
  const c = new WsClient(url);
  const w = await c.hello(token, ALL_FEATURES, {
    session_id: session.sessionId,
    resume_token: session.resumeToken,
    last_event_seq: lastEventSeq,
  });
  if (w.type !== "session.welcome") {
    await c.close();
    throw new Error(`resume refused: ${JSON.stringify(w.payload)}`);
  }
  return c;
}
