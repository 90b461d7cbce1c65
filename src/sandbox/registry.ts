/**
 * The agent inventory: which agents and versions exist, where their modules
 * are, and which version a bare name means. Agent modules are described
 * in short-lived describer processes (or, in a standalone binary, which
 * cannot start deno processes, in a permissionless worker), so no agent code
 * runs in the runtime's own, fully privileged, context.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import {
  compareVersions,
  isAgentName,
  isAgentVersion,
  parseAgentRef,
} from "../protocol/agent_ref.ts";
import type { AgentInventoryEntry } from "../protocol/messages.ts";
import { WorkerMessageSchema } from "./worker/wire.ts";
import { workerEntryUrl } from "./worker/entry.ts";
import {
  describeInProcess,
  type DescriberOptions,
  oneLineReason,
  type RawDescription,
} from "./describer.ts";
import { DEFAULT_REUSE, type Sharing, type SharingAgent } from "./sandbox.ts";

/** One agent version. */
export interface AgentModule {
  /** Agent name. */
  name: string;
  /** Version. */
  version: string;
  /** One line on what it does. */
  description?: string;
  /** File URL of the module. */
  url: string;
  /** How its workers are shared between jobs; absent for a fresh worker per job. */
  sharing?: Sharing;
}

const AGENT_FILE = /\.(ts|js|mjs|mts)$/;

/** How long an agent module may take to describe itself in a worker (standalone binaries). */
const DESCRIBE_TIMEOUT_MS = 30_000;

/** Agent modules described at once at start. */
const DESCRIBE_CONCURRENCY = 4;

/**
 * Checks what a module said it is.
 *
 * @param raw the module's own description
 * @param url file URL of the module
 * @returns the agent version
 * @throws {Error} when the name or version is malformed
 */
function checkDescription(raw: RawDescription, url: string): AgentModule {
  const { name, version, description } = raw;
  if (typeof name !== "string" || !isAgentName(name)) {
    throw new Error(`bad agent name ${JSON.stringify(name)}`);
  }
  if (typeof version !== "string" || !isAgentVersion(version)) {
    throw new Error(`bad agent version ${JSON.stringify(version)}`);
  }
  const sharing = sharingOf(raw.reuse, raw.concurrency);
  return {
    name,
    version,
    ...(typeof description === "string" ? { description } : {}),
    url,
    ...(sharing ? { sharing } : {}),
  };
}

/** A positive integer option, or its default; anything else is an error naming it. */
function positiveInt(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === "number" && Number.isInteger(value) && value >= 1) return value;
  throw new Error(`bad ${name} ${JSON.stringify(value)}: a positive integer`);
}

/**
 * An agent's sharing from its raw `reuse` and `concurrency` options.
 *
 * @param reuse the module's `reuse`, unchecked
 * @param concurrency the module's `concurrency`, unchecked
 * @returns the sharing, or undefined for a fresh worker per job
 * @throws {Error} naming the malformed option
 */
function sharingOf(reuse: unknown, concurrency: unknown): Sharing | undefined {
  if (reuse === undefined && concurrency === undefined) return undefined;
  if (reuse !== undefined && (typeof reuse !== "object" || reuse === null)) {
    throw new Error(`bad reuse ${JSON.stringify(reuse)}: an object`);
  }
  const r = (reuse ?? {}) as { maxJobs?: unknown; idleSec?: unknown };
  return {
    concurrency: positiveInt(concurrency, "concurrency", 1),
    maxJobs: positiveInt(r.maxJobs, "reuse.maxJobs", DEFAULT_REUSE.maxJobs),
    idleSec: positiveInt(r.idleSec, "reuse.idleSec", DEFAULT_REUSE.idleSec),
  };
}

/**
 * Loads an agent module in a worker with no permissions in this process and
 * asks for its name, version and description: for standalone binaries only,
 * which cannot start describer processes.
 *
 * @param url file URL of the module
 * @returns what the module says it is
 */
export function describeAgentModule(url: string): Promise<AgentModule> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerEntryUrl(url), {
      type: "module",
      // deno-lint-ignore no-explicit-any
      deno: { permissions: "none" } as any,
    });
    const timer = setTimeout(
      () => done(new Error("timed out describing the agent")),
      DESCRIBE_TIMEOUT_MS,
    );
    const done = (err: Error | null, mod?: AgentModule) => {
      clearTimeout(timer);
      worker.terminate();
      if (err) reject(err);
      else resolve(mod!);
    };
    worker.onmessage = (e) => {
      if (e.data?.t === "ready") return;
      const parsed = WorkerMessageSchema.safeParse(e.data);
      if (!parsed.success || parsed.data.t !== "described") {
        return done(new Error("not an agent module"));
      }
      try {
        done(null, checkDescription(parsed.data, url));
      } catch (err) {
        done(err as Error);
      }
    };
    worker.onerror = (e) => {
      e.preventDefault();
      done(new Error(e.message));
    };
    worker.postMessage({ t: "describe" });
  });
}

async function* agentFiles(dir: string): AsyncGenerator<string> {
  const entries: Deno.DirEntry[] = [];
  for await (const entry of Deno.readDir(dir)) entries.push(entry);
  entries.sort((a, b) => a.name < b.name ? -1 : 1);
  for (const entry of entries) {
    if (entry.name.startsWith("_") || entry.name.startsWith(".")) continue;
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* agentFiles(path);
    else if (entry.isFile && AGENT_FILE.test(entry.name) && !/_test\.\w+$/.test(entry.name)) {
      yield path;
    }
  }
}

/**
 * The agents a runtime can run.
 *
 * @example
 * ```ts ignore
 * import { AgentRegistry } from "./registry.ts";
 * const registry = await AgentRegistry.fromDirectory("./agents");
 * console.log(registry.inventory());
 * ```
 */
export class AgentRegistry {
  #byName = new Map<string, Map<string, AgentModule>>();
  #sharing = false;

  /**
   * @param modules the agent versions
   * @throws {Error} when one name@version appears twice
   */
  constructor(modules: AgentModule[]) {
    for (const mod of modules) {
      const versions = this.#byName.get(mod.name) ?? new Map<string, AgentModule>();
      if (versions.has(mod.version)) {
        throw new Error(
          `agent ${mod.name}@${mod.version} is defined twice (${
            versions.get(mod.version)!.url
          } and ${mod.url})`,
        );
      }
      versions.set(mod.version, mod);
      this.#byName.set(mod.name, versions);
      if (mod.sharing) this.#sharing = true;
    }
  }

  /** Whether any agent version shares its workers between jobs (`reuse` or `concurrency`). */
  get sharesWorkers(): boolean {
    return this.#sharing;
  }

  /**
   * The agents that share their workers, each at the version a submit that
   * names no version runs, in name order.
   *
   * @returns their module URLs and sharing
   */
  sharingAgents(): SharingAgent[] {
    const out: SharingAgent[] = [];
    for (const entry of this.inventory()) {
      const mod = this.#byName.get(entry.name)!.get(entry.default)!;
      if (mod.sharing) out.push({ url: mod.url, sharing: mod.sharing });
    }
    return out;
  }

  /**
   * Finds every agent module under a folder (files starting with `_` or `.`
   * and `*_test.*` files are skipped) and describes each in a sandbox.
   *
   * @param dir the agents folder
   * @param onSkip told about files that are not loadable agents
   * @param describer how describer processes run; without it, modules are
   *   described in workers of this process (standalone binaries)
   * @returns the registry
   */
  static async fromDirectory(
    dir: string,
    onSkip: (path: string, reason: string) => void = () => {},
    describer?: Omit<DescriberOptions, "agentsDir">,
  ): Promise<AgentRegistry> {
    const root = await Deno.realPath(dir);
    const describe = describer
      ? async (url: string) =>
        checkDescription(await describeInProcess(url, { ...describer, agentsDir: root }), url)
      : describeAgentModule;
    const paths: string[] = [];
    for await (const path of agentFiles(root)) paths.push(path);
    // A few at a time: each describe loads (and may compile) a module graph.
    const described: PromiseSettledResult<AgentModule>[] = [];
    for (let i = 0; i < paths.length; i += DESCRIBE_CONCURRENCY) {
      described.push(
        ...await Promise.allSettled(
          paths.slice(i, i + DESCRIBE_CONCURRENCY).map((p) =>
            describe(new URL(`file://${p}`).href)
          ),
        ),
      );
    }
    const modules: AgentModule[] = [];
    described.forEach((r, i) => {
      if (r.status === "fulfilled") modules.push(r.value);
      else onSkip(paths[i], oneLineReason((r.reason as Error).message));
    });
    return new AgentRegistry(modules);
  }

  /**
   * The inventory for `session.welcome`, sorted by name.
   *
   * @returns one entry per agent name
   */
  inventory(): AgentInventoryEntry[] {
    return [...this.#byName.entries()].sort(([a], [b]) => a < b ? -1 : 1).map(
      ([name, versions]) => {
        const sorted = [...versions.keys()].sort(compareVersions);
        return { name, versions: sorted, default: sorted[sorted.length - 1] };
      },
    );
  }

  /**
   * Resolves a submit's `agent` field.
   *
   * @param ref `name` or `name@version`
   * @returns the agent version to run
   * @throws {ArcpError} `INVALID_REQUEST`, `AGENT_NOT_AVAILABLE` or `AGENT_VERSION_NOT_AVAILABLE`
   */
  resolve(ref: string): AgentModule {
    const parsed = parseAgentRef(ref);
    if (!parsed) {
      throw new ArcpError(
        "INVALID_REQUEST",
        `payload.agent: ${
          JSON.stringify(ref.slice(0, 80))
        } is not name or name@version (name: [a-z0-9][a-z0-9._-]*)`,
      );
    }
    const versions = this.#byName.get(parsed.name);
    if (!versions) throw new ArcpError("AGENT_NOT_AVAILABLE", `no agent named ${parsed.name}`);
    const available = [...versions.keys()].sort(compareVersions);
    const version = parsed.version ?? available[available.length - 1];
    const mod = versions.get(version);
    if (!mod) {
      throw new ArcpError(
        "AGENT_VERSION_NOT_AVAILABLE",
        `agent ${parsed.name} has no version ${version}`,
        {
          agent: parsed.name,
          available_versions: available,
        },
      );
    }
    return mod;
  }
}
