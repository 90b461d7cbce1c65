/**
 * Borrowing the session `arcp submit` stored: `arcp cancel` and `arcp send`
 * act with the authority of the session that submitted a job, so they resume
 * it, mark it in use (an `arcp submit` still following the job waits instead
 * of resuming it back), and hand it back with the rotated resume token.
 *
 * @module
 */
import { ArcpClient } from "../client/client.ts";
import { ArcpClientError } from "../client/errors.ts";
import { nowIso } from "../protocol/time.ts";
import { type ConnectionSettings, describeError } from "./connection.ts";
import type { SessionStore, StoredSession } from "./session_store.ts";

/**
 * Resumes the stored session that submitted a job and marks it in use.
 *
 * @param command the command borrowing it, for messages (`cancel`, `send`)
 * @param connection where to connect
 * @param stored the stored session
 * @param store the CLI's session store
 * @returns the client, or undefined when the runtime refused the resume (the
 *   stored session is then forgotten)
 * @example
 * ```ts ignore
 * const client = await borrowSession("cancel", connection, stored, store);
 * try { await client?.cancel(jobId); } finally { if (client) await handBack(store, stored, client); }
 * ```
 */
export async function borrowSession(
  command: string,
  connection: ConnectionSettings,
  stored: StoredSession,
  store: SessionStore,
): Promise<ArcpClient | undefined> {
  let client: ArcpClient | undefined;
  let tried = stored.resume_token;
  const givesUpAt = Date.now() + ROTATION_WAIT_MS;
  while (!client) {
    try {
      client = await ArcpClient.connect(connection.url, {
        token: connection.token,
        clientName: "arcp-cli",
        resume: {
          sessionId: stored.session_id,
          resumeToken: tried,
          lastEventSeq: stored.last_event_seq,
        },
      });
    } catch (err) {
      if (!(err instanceof ArcpClientError) || err.code !== "RESUME_WINDOW_EXPIRED") throw err;
      // An `arcp submit` may have just resumed the session itself: the token it
      // rotated reaches the store a moment after the runtime spent the old one.
      const rotated = await newerToken(store, stored, tried, givesUpAt);
      if (rotated !== undefined) {
        tried = rotated;
        continue;
      }
      console.error(
        `arcp ${command}: the runtime refused to resume session ${stored.session_id}, which submitted the job (${
          describeError(err)
        }); asking from a new session`,
      );
      await store.forget(stored);
      return undefined;
    }
  }
  // The welcome rotated the token: the stored one is spent. In use until handed back.
  await store.save({
    ...stored,
    resume_token: client.resumeToken,
    saved_at: nowIso(),
    in_use: true,
  })
    .catch((err) =>
      console.error(
        `arcp ${command}: could not store the new resume token: ${describeError(err)}`,
      )
    );
  return client;
}

/** How long a refused resume waits for a token rotated by another process to be stored. */
const ROTATION_WAIT_MS = 5_000;

/** A resume token for the session other than `tried`, once the store has one (polled until `until`). */
async function newerToken(
  store: SessionStore,
  stored: StoredSession,
  tried: string,
  until: number,
): Promise<string | undefined> {
  while (Date.now() < until) {
    const latest = await store.findSession(stored.url, stored.session_id).catch(() => undefined);
    if (!latest) return undefined;
    if (latest.resume_token !== tried) return latest.resume_token;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

/**
 * Hands a borrowed session back: stores its current resume token and clears
 * the in-use mark, so a waiting `arcp submit` may resume it.
 *
 * @param store the CLI's session store
 * @param stored the stored session that was borrowed
 * @param client the client that borrowed it
 * @returns when stored (failures are ignored: the submit then reports what it can)
 */
export async function handBack(
  store: SessionStore,
  stored: StoredSession,
  client: ArcpClient,
): Promise<void> {
  await store.save({ ...stored, resume_token: client.resumeToken, in_use: false })
    .catch(() => {});
}
