/**
 * The worker of the leg's floor (`relay.ts`): answers each `start` with a
 * result holding its input, as JSON text, as an agent's worker does.
 *
 * @module
 */
const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<string>) => void) | null;
  postMessage(msg: unknown): void;
};
scope.onmessage = (e) => {
  const msg = JSON.parse(e.data) as { j: number; input: unknown };
  scope.postMessage(`{"t":"result","j":${msg.j},"value":${JSON.stringify({ echo: msg.input })}}`);
};
