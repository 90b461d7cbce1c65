/**
 * What the runtime and a sandbox host process say to each other: one JSON
 * object per line on the host's stdin (commands) and stdout (reports).
 *
 * @module
 */
import type { WorkerPermissions } from "../permissions.ts";
import type { HostMessage } from "../worker/wire.ts";

/** Runtime → host process. */
export type HostCommand =
  | { c: "launch"; id: string; agentUrl: string; permissions: WorkerPermissions }
  | { c: "post"; id: string; msg: HostMessage }
  | { c: "kill"; id: string };

/** Host process → runtime. */
export type HostReport =
  | { ready: true }
  | { id: string; m: unknown }
  | { id: string; crash: string };
