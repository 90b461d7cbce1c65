/**
 * Checks of a submit that need no state: expiry, input size, and the hash
 * that decides whether an idempotent resubmit is "the same".
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { canonicalJson, sha256Hex } from "../protocol/ids.ts";
import type { Submit } from "../protocol/messages.ts";
import { parseUtc } from "../protocol/time.ts";
import { MAX_NESTING_DEPTH, nestsDeeperThan } from "../protocol/nesting.ts";

/** Largest serialized input accepted. */
export const MAX_INPUT_BYTES = 512 * 1024;

/**
 * Validates `lease_constraints.expires_at`.
 *
 * @param submit the submit payload
 * @param now current epoch ms
 * @returns the expiry in epoch ms, or undefined when none was given
 * @throws {ArcpError} `INVALID_REQUEST` when it is not RFC 3339 UTC or not in the future
 */
export function checkExpiry(submit: Submit, now: number): number | undefined {
  const text = submit.lease_constraints?.expires_at;
  if (text === undefined) return undefined;
  const ms = parseUtc(text);
  if (ms === undefined) {
    throw new ArcpError(
      "INVALID_REQUEST",
      "payload.lease_constraints.expires_at: must be RFC 3339 UTC ending in Z",
    );
  }
  if (ms <= now) {
    throw new ArcpError(
      "INVALID_REQUEST",
      "payload.lease_constraints.expires_at: must be in the future",
    );
  }
  return ms;
}

/**
 * Validates the input's nesting and size.
 *
 * @param submit the submit payload
 * @throws {ArcpError} `INVALID_REQUEST` when the input nests too deep or is over the cap
 */
export function checkInput(submit: Submit): void {
  // First: everything after this (the size, the hash, the worker) walks the input recursively.
  if (nestsDeeperThan(submit.input, MAX_NESTING_DEPTH)) {
    throw new ArcpError(
      "INVALID_REQUEST",
      `payload.input: nests objects or arrays deeper than ${MAX_NESTING_DEPTH} levels`,
      { cap: "input_depth", limit: MAX_NESTING_DEPTH },
    );
  }
  const size = JSON.stringify(submit.input ?? null).length;
  if (size > MAX_INPUT_BYTES) {
    throw new ArcpError(
      "INVALID_REQUEST",
      `payload.input: ${size} bytes is over the ${MAX_INPUT_BYTES}-byte cap`,
    );
  }
}

/**
 * Hash of what makes two submits "the same" for idempotency: agent, input,
 * lease request, constraints and max runtime.
 *
 * @param submit the submit payload
 * @returns hex SHA-256
 */
export function paramsHash(submit: Submit): Promise<string> {
  return sha256Hex(canonicalJson({
    agent: submit.agent,
    input: submit.input ?? null,
    lease_request: submit.lease_request ?? {},
    lease_constraints: submit.lease_constraints ?? {},
    max_runtime_sec: submit.max_runtime_sec ?? null,
  }));
}
