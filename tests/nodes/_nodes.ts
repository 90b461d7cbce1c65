/**
 * Several `arcp serve` processes on one KV file: start, kill, restart, and
 * read the node records and job histories they share.
 *
 * @module
 */
import { type ChildServer, startChildServer } from "../../testing/server.ts";
import { Store } from "../../src/store/store.ts";
import type { NodeRecord } from "../../src/store/nodes.ts";
import { ALL_FEATURES, type Env, WsClient } from "../../testing/ws_client.ts";

/** Short leases, so a dead node on another host would be noticed in seconds (here the pid tells at once). */
export const NODE_FLAGS = ["--node-lease-ms", "3000", "--node-renew-ms", "300"];

/** A cluster of child runtimes on one KV file. */
export interface Cluster {
  /** The temp dir. */
  dir: string;
  /** The KV file they share. */
  kvPath: string;
  /** The nodes, by id. */
  nodes: Map<string, ChildServer>;
  /** Starts (or restarts) a node with this id, with more `serve` flags. */
  start(id: string, flags?: string[]): Promise<ChildServer>;
  /** Reads the node records from KV. */
  records(): Promise<NodeRecord[]>;
  /** Reads a job's history entries (type and payload) from KV. */
  history(jobId: string): Promise<Array<{ type: string; payload: Record<string, unknown> }>>;
  /** Stops every node and removes the dir. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts `ids.length` nodes on one new KV file, one after another.
 *
 * @param ids node ids
 * @returns the cluster
 */
export async function startCluster(ids: string[]): Promise<Cluster> {
  const dir = await Deno.makeTempDir({ prefix: "arcp_nodes_" });
  const kvPath = `${dir}/arcp.kv`;
  const nodes = new Map<string, ChildServer>();
  const withStore = async <T>(f: (store: Store) => Promise<T>): Promise<T> => {
    const store = await Store.open({ path: kvPath });
    try {
      return await f(store);
    } finally {
      await store.close();
    }
  };
  const cluster: Cluster = {
    dir,
    kvPath,
    nodes,
    async start(id, flags = []) {
      const child = await startChildServer(kvPath, ["--node-id", id, ...NODE_FLAGS, ...flags]);
      nodes.set(id, child);
      return child;
    },
    records: () => withStore((s) => s.nodes.list()),
    history: (jobId) =>
      withStore(async (s) => {
        const out = [];
        for await (const [, text] of s.jobLog(jobId)) {
          const { type, payload } = JSON.parse(text);
          out.push({ type, payload });
        }
        return out;
      }),
    async [Symbol.asyncDispose]() {
      await Promise.all([...nodes.values()].map((n) => n.stop("SIGKILL").catch(() => {})));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  try {
    for (const id of ids) await cluster.start(id);
  } catch (err) {
    await cluster[Symbol.asyncDispose]();
    throw err;
  }
  return cluster;
}

/**
 * Waits until `check` holds, polling; the deadline only bounds a failure.
 *
 * @param check the condition
 * @param what what is awaited, for the failure
 * @param ms the bound
 */
export async function until(
  check: () => Promise<boolean> | boolean,
  what: string,
  ms = 30_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  let wait = 10;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 200);
  }
}

/**
 * Opens a socket to a node and resumes a session there.
 *
 * @param url the node
 * @param sessionId the session
 * @param token its resume token
 * @param last the client has every envelope up to this seq
 * @returns the client and the welcome (or error)
 */
export async function resumeOn(
  url: string,
  sessionId: string,
  token: string,
  last: number,
): Promise<{ c: WsClient; w: Env }> {
  const c = new WsClient(url);
  const w = await c.hello("alice-token", ALL_FEATURES, {
    session_id: sessionId,
    resume_token: token,
    last_event_seq: last,
  });
  return { c, w };
}

/** `current` of every progress event in a list, in order. */
export function ticks(envs: Env[]): number[] {
  return envs.filter((e) => e.type === "job.event" && e.payload.kind === "progress")
    .map((e) => e.payload.body.current);
}

/** The seqs of a list of envelopes, in order. */
export function seqs(envs: Env[]): number[] {
  return envs.filter((e) => e.event_seq !== undefined).map((e) => e.event_seq!);
}

/** `from`..`to`. */
export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/**
 * Takes a job's seq-bearing envelopes until a progress event with `current >= n`.
 *
 * @param c the client
 * @param jobId the job
 * @param n the tick
 * @returns the envelopes
 */
export async function readUntilTick(c: WsClient, jobId: string, n: number): Promise<Env[]> {
  const out: Env[] = [];
  while (true) {
    const e = await c.next(
      (x) => (x.job_id === jobId && x.event_seq !== undefined) || x.type === "session.error",
      30_000,
    );
    if (e.type === "session.error") throw new Error(`session.error: ${JSON.stringify(e.payload)}`);
    out.push(e);
    if (e.type !== "job.event") throw new Error(`job ended early: ${JSON.stringify(e.payload)}`);
    if (e.payload.kind === "progress" && e.payload.body.current >= n) return out;
  }
}
