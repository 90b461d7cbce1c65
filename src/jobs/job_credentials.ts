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
    // The agent holds the new value before anyone is told the old one is gone.
    live.run?.credentials(this.#service.current(jobId) ?? []);
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
   * Issues a delegated child its own credential when its parent has one
   * (§9.8.2): scoped to the child's lease, which is a subset of the
   * parent's (models from its `model.use`, spend from its `cost.budget`,
   * expiry no later than the parent's), and revoked when the child ends.
   *
   * @param child the child, live and accepted, not yet started
   * @returns resolves once issued (at once when the parent has none)
   * @throws {ArcpError} `INTERNAL_ERROR` when the upstream cannot issue
   */
  async issueChild(child: LiveJob): Promise<void> {
    const parent = child.parent;
    if (!this.#service || !parent || !this.#service.current(parent.record.job_id)?.length) return;
    const job = child.record;
    await this.#service.issue({
      jobId: job.job_id,
      traceId: job.trace_id,
      lease: job.lease,
      expiresAt: job.lease_constraints?.expires_at,
      budget: job.budget,
    });
  }

  /**
   * Revokes the credentials of a job's descendants and takes them from
   * their agents: a job's end leaves no credential of its tree live, even
   * while its children are still being cancelled.
   *
   * @param live the ending job
   * @returns resolves once attempted
   */
  async revokeDescendants(live: LiveJob): Promise<void> {
    if (!this.#service) return;
    const pending: Array<Promise<void>> = [];
    const visit = (job: LiveJob) => {
      for (const child of job.children) {
        if (this.#service!.current(child.record.job_id)) {
          child.run?.credentials([]);
          pending.push(this.#service!.revokeJob(child.record.job_id));
        }
        visit(child);
      }
    };
    visit(live);
    await Promise.all(pending);
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
