/**
 * The `/v1` management API as the page uses it: the bearer token from
 * `sessionStorage` (so it lives as long as the tab and never reaches a URL),
 * JSON requests, and the job event stream read as Server-Sent Events over
 * `fetch` (`EventSource` cannot send an Authorization header).
 *
 * @module
 */

const TOKEN_KEY = "arcp.dashboard.token";

/** An error answer of the API, with its ARCP code. */
export class ApiError extends Error {
  /**
   * @param {number} status the HTTP status
   * @param {string} code the ARCP error code
   * @param {string} message what went wrong
   * @param {Record<string, unknown>} [details] the error's details
   */
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** @type {() => void} */
let onUnauthorized = () => {};

/**
 * Sets what happens when the API refuses the token (401).
 *
 * @param {() => void} handler shows the sign-in form again
 */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/**
 * The token in use.
 *
 * @returns {string | null}
 */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/**
 * Keeps a token for this tab, or forgets it.
 *
 * @param {string | null} value the token, or null to sign out
 */
export function setToken(value) {
  if (value === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
}

/**
 * The request headers: the token and what to accept.
 *
 * @param {string} accept the Accept header
 * @returns {Record<string, string>}
 */
function headers(accept) {
  return { authorization: `Bearer ${token() ?? ""}`, accept };
}

/**
 * Turns a refused response into an ApiError.
 *
 * @param {Response} res the response
 * @returns {Promise<ApiError>}
 */
async function failure(res) {
  const text = await res.text();
  let error;
  try {
    error = JSON.parse(text).error;
  } catch {
    // Not JSON: a proxy's page or plain text; shown as it is.
  }
  if (res.status === 401) onUnauthorized();
  return new ApiError(
    res.status,
    error?.code ?? `HTTP_${res.status}`,
    error?.message ?? (text.trim() || res.statusText),
    error?.details,
  );
}

/**
 * Calls the API.
 *
 * @param {string} path the path, e.g. `/v1/jobs?limit=50`
 * @param {{ method?: string, body?: unknown, signal?: AbortSignal }} [options]
 * @returns {Promise<any>} the decoded JSON answer
 * @throws {ApiError} when the API refuses
 */
export async function api(path, options = {}) {
  const init = { method: options.method ?? "GET", headers: headers("application/json") };
  if (options.body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const res = await fetch(path, { ...init, signal: options.signal });
  if (!res.ok) throw await failure(res);
  return res.status === 204 ? null : await res.json();
}

/**
 * Reads a Server-Sent Events stream until the server ends it.
 *
 * @param {string} path the path
 * @param {AbortSignal} signal stops reading
 * @returns {AsyncGenerator<{ id?: string, event: string, data: string }>}
 * @throws {ApiError} when the API refuses
 */
export async function* sse(path, signal) {
  const res = await fetch(path, { headers: headers("text/event-stream"), signal });
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // Messages end with a blank line; the last piece may be incomplete.
      const blocks = buffer.split(/\r?\n\r?\n/);
      buffer = blocks.pop() ?? "";
      for (const block of blocks) {
        const message = parseBlock(block);
        if (message) yield message;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * One SSE message from its lines; comments (`: ping`) give none.
 *
 * @param {string} block the lines of one message
 * @returns {{ id?: string, event: string, data: string } | null}
 */
function parseBlock(block) {
  let id;
  let event = "message";
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length === 0 ? null : { id, event, data: data.join("\n") };
}
