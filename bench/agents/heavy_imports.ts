/**
 * An agent heavier than echo at load: it pulls in Node compatibility
 * modules (crypto, buffer, util, zlib) and keeps a 4 MiB table as a module
 * global, touched once, as an agent with a lookup table or a loaded model
 * vocabulary would. `bench/pool_memory.ts --spares` measures what a spare
 * worker of it costs beside one of echo.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { inspect } from "node:util";
import { gzipSync } from "node:zlib";
import { defineAgent } from "../../src/agent.ts";

const TABLE = new Uint32Array(1024 * 1024);
for (let i = 0; i < TABLE.length; i++) TABLE[i] = (i * 2654435761) >>> 0;

export default defineAgent<{ text?: string }, { digest: string; packed: number; seen: string }>({
  name: "heavy-imports",
  version: "1.0.0",
  run(input) {
    const text = input?.text ?? "";
    const digest = createHash("sha256").update(Buffer.from(text)).digest("hex");
    return Promise.resolve({
      digest,
      packed: gzipSync(Buffer.from(text)).length + TABLE[text.length % TABLE.length] % 2,
      seen: inspect(text),
    });
  },
});
