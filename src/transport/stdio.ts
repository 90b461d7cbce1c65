/**
 * stdio transport: newline-delimited JSON envelopes on a pair of byte
 * streams (stdin/stdout). Logs never go here.
 *
 * @module
 */
import { encodeEnvelope } from "../protocol/encode.ts";
import { ArcpError } from "../protocol/errors.ts";
import type { Transport, TransportHandler } from "./transport.ts";

/**
 * Serves one connection over a readable/writable pair until input ends.
 *
 * @param input bytes in (e.g. `Deno.stdin.readable`)
 * @param output bytes out (e.g. `Deno.stdout.writable`)
 * @param maxLineBytes longest accepted line; a longer one ends the connection
 * @param makeHandler builds the handler once the transport exists
 * @returns resolves when the input ends or the connection is closed
 */
export async function serveLines(
  input: ReadableStream<Uint8Array>,
  output: WritableStream<Uint8Array>,
  maxLineBytes: number,
  makeHandler: (transport: Transport) => TransportHandler,
): Promise<void> {
  const writer = output.getWriter();
  const encoder = new TextEncoder();
  let closed = false;
  let pending = 0;
  let chain = Promise.resolve();
  const transport: Transport = {
    send(text) {
      if (closed) return;
      const bytes = encoder.encode(text + "\n");
      pending += bytes.byteLength;
      chain = chain.then(() => writer.write(bytes)).then(() => {
        pending -= bytes.byteLength;
      }, () => {
        closed = true;
      });
    },
    close() {
      closed = true;
    },
    abort() {
      closed = true;
    },
    remoteAddr: "stdio",
    secure: false,
    maxBufferedAmount: Infinity,
    get bufferedAmount() {
      return pending;
    },
  };
  const handler = makeHandler(transport);
  const reader = input.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    while (!closed) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let nl: number;
      while (!closed && (nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        if (line.trim()) handler.onText(line);
      }
      if (buf.length > maxLineBytes) {
        const error = new ArcpError("INVALID_REQUEST", `line exceeds ${maxLineBytes} bytes`);
        transport.send(
          encodeEnvelope({
            type: "session.error",
            session_id: "sess_stdio",
            payload: error.toPayload(),
          }),
        );
        break;
      }
    }
  } finally {
    closed = true;
    handler.onClose();
    await chain;
    reader.releaseLock();
    await writer.close().catch(() => {});
  }
}
