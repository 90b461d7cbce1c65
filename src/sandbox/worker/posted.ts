/**
 * Messages between a worker and whoever runs it may travel as JSON text
 * instead of objects: a string crosses `postMessage` as one copy, where an
 * object is walked by the structured-clone serializer on one side and
 * rebuilt on the other (measured on Deno 2.9.6: ~5 µs per small object,
 * ~0.5 µs per string of the same content, plus ~1 µs to parse it). Kept
 * free of dependencies: the sandbox process, which loads no npm packages,
 * reads it too.
 *
 * @module
 */

/**
 * A message as it was posted: JSON text parsed, anything else as it is. A
 * string that is not JSON stays a string, which no checker accepts as a
 * message, as before messages could be text.
 *
 * @example
 * ```ts
 * import { readPosted } from "./posted.ts";
 * console.log(readPosted('{"t":"beat"}')); // { t: "beat" }
 * ```
 *
 * @param data the `data` of a message event
 * @returns the message, and its JSON text when it came as text
 */
export function readPosted(data: unknown): { msg: unknown; text?: string } {
  if (typeof data !== "string") return { msg: data };
  try {
    return { msg: JSON.parse(data), text: data };
  } catch {
    return { msg: data };
  }
}
