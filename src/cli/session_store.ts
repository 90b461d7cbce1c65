/**
 * The sessions `arcp submit` leaves behind, so that a later `arcp cancel`
 * can resume the session that holds the cancel authority.
 *
 * The file is `$ARCP_CLI_SESSIONS` when set, else `~/.arcp/cli-sessions.json`
 * (`$HOME`, or `%USERPROFILE%` on Windows), else `./data/cli-sessions.json`.
 * It holds resume tokens, which are secrets: it is written with mode 0600 in
 * a 0700 directory, replaced atomically, and never printed. A session is
 * forgotten once its jobs have ended.
 *
 * @module
 */
import { z } from "zod";

const StoredSessionSchema = z.object({
  url: z.string(),
  session_id: z.string(),
  resume_token: z.string(),
  last_event_seq: z.number().int().nonnegative(),
  jobs: z.array(z.string()),
  saved_at: z.string(),
  /** Set by `arcp cancel` while it holds the session, so `arcp submit` waits to resume it. */
  in_use: z.boolean().optional(),
});

/** A session `arcp submit` opened and may come back to. */
export type StoredSession = z.infer<typeof StoredSessionSchema>;

const FileSchema = z.object({ sessions: z.array(StoredSessionSchema) });

/**
 * Where the sessions file lives.
 *
 * @param env environment lookup
 * @returns the file's path
 */
export function sessionsPath(env: (name: string) => string | undefined): string {
  const explicit = env("ARCP_CLI_SESSIONS");
  if (explicit) return explicit;
  const home = env("HOME") ?? env("USERPROFILE");
  return home ? `${home}/.arcp/cli-sessions.json` : "./data/cli-sessions.json";
}

/** The sessions file. */
export class SessionStore {
  readonly #path: string;

  /**
   * Opens (lazily) the store at a path.
   *
   * @param path the file, as {@linkcode sessionsPath} gives it
   */
  constructor(path: string) {
    this.#path = path;
  }

  /**
   * Finds the stored session that submitted a job on a runtime.
   *
   * @param url the runtime's endpoint
   * @param jobId the job
   * @returns the session, if one is stored
   */
  async find(url: string, jobId: string): Promise<StoredSession | undefined> {
    return (await this.#read()).find((s) => s.url === url && s.jobs.includes(jobId));
  }

  /**
   * Finds a stored session by id.
   *
   * @param url the runtime's endpoint
   * @param sessionId the session
   * @returns the session, if stored
   */
  async findSession(url: string, sessionId: string): Promise<StoredSession | undefined> {
    return (await this.#read()).find((s) => s.url === url && s.session_id === sessionId);
  }

  /**
   * Adds or replaces a session (matched by url and session id).
   *
   * @param session the session
   */
  async save(session: StoredSession): Promise<void> {
    const rest = (await this.#read()).filter((s) => !sameSession(s, session));
    await this.#write([...rest, session]);
  }

  /**
   * Drops a job from its session, and the session once it has no jobs left.
   *
   * @param session the session (url and id)
   * @param jobId the job that ended
   */
  async forgetJob(
    session: Pick<StoredSession, "url" | "session_id">,
    jobId: string,
  ): Promise<void> {
    const sessions = (await this.#read()).flatMap((s) => {
      if (!sameSession(s, session)) return [s];
      const jobs = s.jobs.filter((j) => j !== jobId);
      return jobs.length ? [{ ...s, jobs }] : [];
    });
    await this.#write(sessions);
  }

  /**
   * Drops a session (its resume window is over).
   *
   * @param session the session (url and id)
   */
  async forget(session: Pick<StoredSession, "url" | "session_id">): Promise<void> {
    await this.#write((await this.#read()).filter((s) => !sameSession(s, session)));
  }

  async #read(): Promise<StoredSession[]> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
    try {
      return FileSchema.parse(JSON.parse(text)).sessions;
    } catch {
      // A damaged file only costs the ability to resume; start over.
      return [];
    }
  }

  async #write(sessions: StoredSession[]): Promise<void> {
    const cut = Math.max(this.#path.lastIndexOf("/"), this.#path.lastIndexOf("\\"));
    if (cut > 0) await Deno.mkdir(this.#path.slice(0, cut), { recursive: true, mode: 0o700 });
    // Write then rename, so a crash never leaves half a file (or a readable token).
    const tmp = `${this.#path}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify({ sessions }, null, 2) + "\n", { mode: 0o600 });
    await Deno.rename(tmp, this.#path);
  }
}

function sameSession(
  a: Pick<StoredSession, "url" | "session_id">,
  b: Pick<StoredSession, "url" | "session_id">,
): boolean {
  return a.url === b.url && a.session_id === b.session_id;
}
