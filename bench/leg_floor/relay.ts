/**
 * The floor of the sandbox leg: a process of the sandbox process's shape
 * (a control socket, one worker, the same frames) that does nothing else:
 * each frame's message goes to the worker as text, the worker answers with
 * a result, and the answer goes back in a frame. What `bench/sandbox_leg.ts
 * --floor` measures against the real leg: the cost of the hops themselves.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-net relay.ts <socket path>
 * ```
 *
 * @module
 */
import { frameText, FrameWriter, readFrames } from "../../src/sandbox/host/frames.ts";

const conn = await Deno.connect({ transport: "unix", path: Deno.args[0] });
const out = new FrameWriter(conn);
const worker = new Worker(new URL("./echo_worker.ts", import.meta.url), { type: "module" });
worker.onmessage = (e: MessageEvent<string>) => {
  JSON.parse(e.data);
  out.write(frameText(`{"m":${e.data}}`));
};
try {
  for await (const frame of readFrames(conn, 1 << 20)) {
    worker.postMessage(JSON.stringify((frame as { msg: unknown }).msg));
  }
} catch {
  // A broken channel ends this process like a closed one.
}
Deno.exit(0);
