/**
 * Query parameters and bodies of the management API: integers in a range
 * and JSON bodies checked by a schema, with a clear 400 otherwise.
 *
 * @module
 */
import type { z } from "zod";
import { invalid } from "./errors.ts";

/**
 * A page size: absent → the default; above the maximum → 400 with
 * `details {limit, max}`.
 *
 * @param text the parameter
 * @param fallback the default
 * @param max the largest allowed
 * @returns the size
 * @throws {ArcpError} `INVALID_REQUEST`
 */
export function limitParam(text: string | undefined, fallback: number, max: number): number {
  if (text === undefined || text === "") return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw invalid(`limit: expected an integer from 1 to ${max}, got ${JSON.stringify(text)}`, {
      limit: text,
      max,
    });
  }
  if (n > max) throw invalid(`limit ${n} is above the maximum ${max}`, { limit: n, max });
  return n;
}

/**
 * A log position: absent → -1 (from the start).
 *
 * @param text the parameter
 * @param name its name, for the message
 * @returns the position
 * @throws {ArcpError} `INVALID_REQUEST` unless an integer ≥ -1
 */
export function afterParam(text: string | undefined, name = "after"): number {
  if (text === undefined || text === "") return -1;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < -1) {
    throw invalid(`${name}: expected an integer ≥ -1, got ${JSON.stringify(text)}`);
  }
  return n;
}

/**
 * A request body: empty → `{}`, else JSON checked against a schema.
 *
 * @param text the body
 * @param schema what it must be
 * @returns the parsed body
 * @throws {ArcpError} `INVALID_REQUEST` naming what is wrong
 */
export function parseBody<T>(text: string, schema: z.ZodType<T>): T {
  let json: unknown = {};
  if (text.trim() !== "") {
    try {
      json = JSON.parse(text);
    } catch {
      throw invalid("body: not JSON");
    }
  }
  const body = schema.safeParse(json);
  if (!body.success) {
    throw invalid(
      `body: ${
        body.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ")
      }`,
    );
  }
  return body.data;
}
