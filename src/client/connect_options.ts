/**
 * What `ArcpClient.connect` is told: the token, the features to ask
 * for, a session to resume and jobs to follow from the welcome on.
 *
 * @module
 */
import { ALL_FEATURES, VENDOR_FEATURES } from "../protocol/features.ts";

/**
 * The features the client asks for unless told otherwise: everything it
 * handles, `result_chunk` included (chunks arrive as events, and
 * `resultBytes()`/`resultText()` reassemble them on request). Only
 * `provisioned_credentials` is left out (secrets only for callers that ask).
 * This runtime's vendor features are asked for too; another runtime ignores them.
 */
export const DEFAULT_FEATURES: readonly string[] = [
  ...ALL_FEATURES.filter((f) => f !== "provisioned_credentials"),
  ...VENDOR_FEATURES,
];

/** A session to take over, from an earlier welcome. */
export interface ResumeOptions {
  /** The session's id. */
  sessionId: string;
  /** The newest resume token it was given. */
  resumeToken: string;
  /** The highest `event_seq` already processed; the runtime replays what follows. */
  lastEventSeq: number;
}

/** An `event_seq` that skipped ahead. */
export interface SequenceGap {
  /** The seq that should have come. */
  expected: number;
  /** The seq that came. */
  received: number;
}

/** Options of {@linkcode ArcpClient.connect}. */
export interface ConnectOptions {
  /** Bearer token; it decides the principal. */
  token: string;
  /** Features to ask for; default {@linkcode DEFAULT_FEATURES}. */
  features?: readonly string[];
  /** `client.name` in the hello; default `arcp-deno-client`. */
  clientName?: string;
  /** `client.version` in the hello. */
  clientVersion?: string;
  /** Resume this session instead of opening a new one. */
  resume?: ResumeOptions;
  /**
   * Jobs to follow from the welcome on, so that none of their envelopes
   * are missed: with `resume`, the runtime replays their events right after
   * the welcome. Get each one's stream with {@linkcode ArcpClient.watch}.
   */
  watch?: readonly string[];
  /**
   * Called when `event_seq` skips ahead. The session is then broken (ARCP
   * §8.3): the client closes it and everything pending fails with
   * `SEQUENCE_GAP`, so the caller can resume from {@linkcode ArcpClient.lastEventSeq}.
   */
  onGap?: (gap: SequenceGap) => void;
}
