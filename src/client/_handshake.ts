/**
 * The handshake from the client's side: the `session.hello` it opens with,
 * and what the runtime's answer makes of the session.
 *
 * @module
 */
import type { Envelope } from "../protocol/envelope.ts";
import type { Hello } from "../protocol/messages.ts";
import { type ConnectOptions, DEFAULT_FEATURES } from "./connect_options.ts";
import * as decode from "./decode.ts";
import { ArcpClientError, sessionError } from "./errors.ts";
import type { AgentInfo, RuntimeInfo } from "./payloads.ts";

// Spelled out rather than read from the runtime, which a client must not import.
const CLIENT_INFO = { name: "arcp-deno-client", version: "0.1.0" };

/** What the welcome said about the session. */
export interface SessionInfo {
  /** The session id. */
  sessionId: string;
  /** The newest resume token. */
  resumeToken: string;
  /** How long the session stays resumable after the connection drops (s). */
  resumeWindowSec: number;
  /** The heartbeat interval (s), when `heartbeat` was negotiated. */
  heartbeatIntervalSec: number | undefined;
  /** The runtime's name and version. */
  runtime: RuntimeInfo;
  /** The features asked for that the runtime granted. */
  features: readonly string[];
  /** The agents the runtime offers. */
  agents: readonly AgentInfo[];
  /** Whether this connection resumed an earlier session. */
  resumed: boolean;
  /** The `event_seq` already processed: the resumed session's, or 0 for a new one. */
  lastEventSeq: number;
}

/** The session before any welcome. */
export const NO_SESSION: SessionInfo = {
  sessionId: "",
  resumeToken: "",
  resumeWindowSec: 0,
  heartbeatIntervalSec: undefined,
  runtime: { name: "", version: "" },
  features: [],
  agents: [],
  resumed: false,
  lastEventSeq: 0,
};

/**
 * The `session.hello` that opens (or resumes) a session.
 *
 * @param options token, features, client name, resume
 * @returns the payload
 */
export function helloPayload(options: ConnectOptions): Hello {
  const payload: Hello = {
    client: {
      name: options.clientName ?? CLIENT_INFO.name,
      version: options.clientVersion ?? CLIENT_INFO.version,
    },
    auth: { scheme: "bearer", token: options.token },
    capabilities: {
      encodings: ["json"],
      features: [...(options.features ?? DEFAULT_FEATURES)],
    },
  };
  const resume = options.resume;
  if (resume) {
    payload.resume = {
      session_id: resume.sessionId,
      resume_token: resume.resumeToken,
      last_event_seq: resume.lastEventSeq,
    };
  }
  return payload;
}

/**
 * Reads an envelope that came before the welcome.
 *
 * @param env the envelope; it carries a session id
 * @param options what the hello asked for
 * @returns the welcomed session; the error that ends the handshake when the
 *   hello was refused or the welcome is malformed; undefined for anything
 *   else, which is dropped
 */
export function answerToHello(
  env: Envelope,
  options: ConnectOptions,
): SessionInfo | ArcpClientError | undefined {
  if (env.type === "session.error") {
    return sessionError(decode.errorPayload(env.payload), "the runtime refused the hello");
  }
  if (env.type !== "session.welcome") return undefined;
  const welcome = decode.welcome(env.payload);
  if (!welcome) {
    return new ArcpClientError("INTERNAL_ERROR", "the runtime sent a malformed welcome");
  }
  const resume = options.resume;
  const resumed = resume?.sessionId === env.session_id;
  const asked = new Set(options.features ?? DEFAULT_FEATURES);
  return {
    sessionId: env.session_id!,
    resumeToken: welcome.resume_token,
    resumeWindowSec: welcome.resume_window_sec,
    heartbeatIntervalSec: welcome.heartbeat_interval_sec,
    runtime: welcome.runtime,
    features: welcome.capabilities.features.filter((f) => asked.has(f)),
    agents: welcome.capabilities.agents,
    resumed,
    lastEventSeq: resumed ? resume!.lastEventSeq : 0,
  };
}
