/**
 * Provisioned credentials of live jobs after `job.accepted`: rotation, and
 * sending them again to a resumed session. The value goes to the job's
 * observers and never reaches KV: the logged copy is redacted.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import type { Credential, CredentialService } from "../credentials/credentials.ts";
import type { JobTable } from "./job_table.ts";
import type { LiveJob } from "./live_job.ts";
import { type Fanout, jobEvent } from "./fanout.ts";

/** Credentials of live jobs. */
export class JobCredentials {
  #service: CredentialService | undefined;
  #live: JobTable;
  #fanout: Fanout;

  /**
   * @param deps the credential service (when configured), the live jobs and the fan-out
   */
  constructor(
    deps: { service: CredentialService | undefined; live: JobTable; fanout: Fanout },
  ) {
    this.#service = deps.service;
    this.#live = deps.live;
    this.#fanout = deps.fanout;
  }

  /**
   * Rotates a live job's credential: a fresh value under the same id, the
   * old one revoked, and `status {phase: "credential_rotated"}` to the job's
   * observers.
   *
   * @param jobId the job
   * @returns resolves once the new value was sent
   * @throws {ArcpError} `JOB_NOT_FOUND` when the job is not live or has no credential
   */
  async rotate(jobId: string): Promise<void> {
    const live = this.#live.get(jobId);
    if (!live || live.ended || !this.#service) {
      throw new ArcpError("JOB_NOT_FOUND", `no live job ${jobId} with credentials`);
    }
    const job = live.record;
    const credential = await this.#service.rotate({
      jobId,
      traceId: job.trace_id,
      lease: job.lease,
      expiresAt: job.lease_constraints?.expires_at,
      budget: job.budget,
    });
    await this.#send(live, credential, "credential rotated");
  }

  /**
   * The current credentials of a live job.
   *
   * @param jobId the job
   * @returns them, or undefined when the job has none or ended
   */
  current(jobId: string): Credential[] | undefined {
    return this.#service?.current(jobId);
  }

  /**
   * Sends the current credentials of a session's live jobs again (after a
   * resume: the replayed log holds only redacted copies).
   *
   * @param sessionId the resumed session
   * @returns resolves once sent
   */
  async redeliver(sessionId: string): Promise<void> {
    if (!this.#service) return;
    for (const live of this.#live.values()) {
      if (live.ended || live.record.session_id !== sessionId) continue;
      for (const c of this.#service.current(live.record.job_id) ?? []) {
        await this.#send(live, c, "current credential after resume");
      }
    }
  }

  /**
   * Whether the runtime provisions credentials at all. Without, a job's end
   * awaits no revocation, so its terminal is staged in the same turn.
   */
  get provisioned(): boolean {
    return this.#service !== undefined;
  }

  /**
   * Revokes a job's credentials.
   *
   * @param jobId the job
   * @returns resolves once attempted (at once when none are provisioned)
   */
  async revoke(jobId: string): Promise<void> {
    await this.#service?.revokeJob(jobId);
  }

  #send(live: LiveJob, credential: Credential, message: string): Promise<void> {
    const body = {
      phase: "credential_rotated",
      message,
      credential: { id: credential.id, value: credential.value },
    };
    const redacted = { ...body, credential: { id: credential.id, value: "[redacted]" } };
    return this.#fanout.emit(
      live,
      "job.event",
      jobEvent("status", body),
      undefined,
      jobEvent("status", redacted),
    );
  }
}
