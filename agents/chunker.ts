/**
 * `chunker@1.0.0`: streams a result of `bytes` bytes where byte i is
 * `"abcdefghijklmnopqrstuvwxyz"[i % 26]`, in writes of `chunk_bytes`.
 */
import { defineAgent } from "../src/agent.ts";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz";

export default defineAgent({
  name: "chunker",
  version: "1.0.0",
  description: "Streams bytes of the alphabet as a chunked result (utf8 text or base64 bytes).",
  async run(input: { bytes: number; chunk_bytes?: number; encoding?: "utf8" | "base64" }, ctx) {
    const total = Math.max(0, Math.floor(Number(input?.bytes ?? 0)));
    const size = Math.max(1, Math.floor(Number(input?.chunk_bytes ?? 65536)));
    const binary = input?.encoding === "base64";
    const writer = ctx.streamResult().getWriter();
    for (let start = 0; start < total; start += size) {
      ctx.signal.throwIfAborted();
      const n = Math.min(size, total - start);
      let text = "";
      for (let i = 0; i < n; i++) text += ALPHABET[(start + i) % 26];
      await writer.write(binary ? new TextEncoder().encode(text) : text);
    }
    await writer.close();
  },
});
