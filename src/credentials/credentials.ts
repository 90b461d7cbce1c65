/**
 * Provisioned credentials (ARCP.md §5.8): short-lived, lease-scoped
 * credentials a provisioner issues for one job, handed to the submitter in
 * `job.accepted`, and revoked on every terminal state. An outstanding
 * revocation is written to KV before the credential is handed out (under a
 * non-secret handle), so it is retried with backoff until it succeeds, also
 * after a restart. Credential values live only in memory, never in KV or logs.
 *
 * @module
 */
import { ArcpError } from "../protocol/errors.ts";
import { newUlid } from "../protocol/ids.ts";
import type { Lease } from "../protocol/lease.ts";
import type { Credential } from "../protocol/messages.ts";
import type { Logger } from "../logger.ts";
import type { RevocationRecord } from "../store/revocations.ts";
import type { Store } from "../store/store.ts";

/** What a provisioner needs to scope a credential to a job. */
export interface CredentialRequest {
  /** The job. */
  jobId: string;
  /** The job's trace id (propagate it to the upstream). */
  traceId: string;
  /** The effective lease. */
  lease: Lease;
  /** `lease_constraints.expires_at`, if any. */
  expiresAt?: string;
  /** Initial budget counters, if the lease has `cost.budget`. */
  budget?: Record<string, number>;
  /** The non-secret name the credential is issued and revoked under. */
  handle: string;
}

export type { Credential };

/** A revocation that failed. */
export class RevocationError extends Error {
  /** True when retrying cannot help (the upstream refused for good). */
  readonly permanent: boolean;

  /**
   * Creates a revocation error.
   *
   * @param message what happened (never the secret)
   * @param permanent whether retrying is pointless
   */
  constructor(message: string, permanent: boolean) {
    super(message);
    this.name = "RevocationError";
    this.permanent = permanent;
  }
}

/** Something that can mint and revoke scoped credentials. */
export interface CredentialProvisioner {
  /** A short name for logs and KV records. */
  readonly name: string;
  /**
   * Issues one credential for a job.
   *
   * @param request the job's scope and the handle to issue it under
   * @returns the credential, its `id` set by the caller
   */
  issue(request: CredentialRequest): Promise<Omit<Credential, "id">>;
  /**
   * Revokes a credential by its handle; succeeds when it is already gone.
   *
   * @param handle the non-secret handle it was issued under
   * @throws {RevocationError} transient or permanent failure
   */
  revoke(handle: string): Promise<void>;
}

/** Options of {@linkcode CredentialService}. */
export interface CredentialServiceOptions {
  /** Longest wait between retries (ms, default 5 minutes). */
  maxBackoffMs?: number;
  /** How long a terminal waits for the first revocation attempt (ms, default 3 s). */
  revokeWaitMs?: number;
  /** How often outstanding revocations are retried (ms, default 1 s). */
  retryIntervalMs?: number;
}

/** Issues, rotates and revokes the credentials of jobs. */
export class CredentialService {
  #provisioner: CredentialProvisioner;
  #store: Store;
  #log: Logger;
  #live = new Map<string, Array<Credential & { handle: string }>>();
  /** Handles whose issue is in flight (their record is in KV, the upstream not yet answered). */
  #issuing = new Map<string, { jobId: string; done: Promise<void> }>();
  /** Revocations in flight, by handle (one attempt at a time per handle). */
  #revoking = new Map<string, Promise<void>>();
  #maxBackoffMs: number;
  #revokeWaitMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #retrying = false;
  /**
   * Called when the upstream fails to issue (`issue`, rotations included) or
   * a revocation attempt fails (`revoke`; it is retried), for the operator
   * metrics.
   */
  onFailure: ((op: "issue" | "revoke") => void) | undefined;

  /**
   * @param provisioner the upstream
   * @param store where outstanding revocations are kept
   * @param log operator log (never given a secret)
   * @param options backoff and waits
   */
  constructor(
    provisioner: CredentialProvisioner,
    store: Store,
    log: Logger,
    options: CredentialServiceOptions = {},
  ) {
    this.#provisioner = provisioner;
    this.#store = store;
    this.#log = log;
    this.#maxBackoffMs = options.maxBackoffMs ?? 300_000;
    this.#revokeWaitMs = options.revokeWaitMs ?? 3000;
    this.#timer = setInterval(() => this.retryDue(), options.retryIntervalMs ?? 1000);
  }

  /**
   * Issues a job's credential. The revocation record is committed first,
   * so a crash right after issuing still leads to a revocation.
   *
   * @param request the job's scope (its `handle` is filled in here)
   * @returns the credentials to hand to the submitter
   * @throws {ArcpError} `INTERNAL_ERROR` when the upstream cannot issue
   */
  async issue(request: Omit<CredentialRequest, "handle">): Promise<Credential[]> {
    const id = `cred_${newUlid()}`;
    const handle = `arcp-${id}`;
    const record: RevocationRecord = {
      job_id: request.jobId,
      credential_id: id,
      provisioner: this.#provisioner.name,
      handle,
      attempts: 0,
      next_at: 0,
    };
    return await this.#issueUnder(request, record, (issued) => {
      const credential: Credential = { id, ...issued };
      this.#live.set(request.jobId, [{ ...credential, handle }]);
      return [credential];
    });
  }

  /**
   * Commits the revocation record, then asks the upstream. While the answer
   * is pending the handle is marked in flight, so the retry loop does not
   * revoke it from under the issue (a delete that lands before the key
   * exists would find nothing, drop the record, and leak the key). `adopt`
   * runs before the mark is cleared, so there is no moment when the handle
   * is neither in flight nor live.
   */
  async #issueUnder<T>(
    request: Omit<CredentialRequest, "handle">,
    record: RevocationRecord,
    adopt: (issued: Omit<Credential, "id">) => T,
  ): Promise<T> {
    const { handle } = record;
    const { promise: done, resolve } = Promise.withResolvers<void>();
    // Marked before the record is written: the retry loop only sees records.
    this.#issuing.set(handle, { jobId: request.jobId, done });
    try {
      await this.#store.revocations.put(record);
      let issued: Omit<Credential, "id">;
      try {
        issued = await this.#provisioner.issue({ ...request, handle });
      } catch (err) {
        this.onFailure?.("issue");
        // The upstream may have issued before failing: revoke by handle anyway.
        await this.#store.revocations.put({ ...record, next_at: Date.now() });
        throw new ArcpError(
          "INTERNAL_ERROR",
          `credential provisioner ${this.#provisioner.name} could not issue: ${
            (err as Error).message
          }`,
        );
      }
      return adopt(issued);
    } finally {
      this.#issuing.delete(handle);
      resolve();
    }
  }

  /**
   * The credentials of a live job (for idempotent replays and subscribers of
   * the submitting principal).
   *
   * @param jobId the job
   * @returns its current credentials, or undefined when it has none or ended
   */
  current(jobId: string): Credential[] | undefined {
    return this.#live.get(jobId)?.map(({ handle: _handle, ...c }) => c);
  }

  /**
   * Replaces a live job's credential with a fresh one and revokes the old.
   *
   * @param request the job's scope
   * @returns the rotated credential (same id, new value)
   * @throws {ArcpError} `JOB_NOT_FOUND` when the job has no live credential
   */
  async rotate(request: Omit<CredentialRequest, "handle">): Promise<Credential> {
    const creds = this.#live.get(request.jobId);
    const old = creds?.[0];
    if (!creds || !old) {
      throw new ArcpError("JOB_NOT_FOUND", `job ${request.jobId} has no live credential`);
    }
    const handle = `arcp-${old.id}-${newUlid().slice(-8).toLowerCase()}`;
    const fresh = await this.#issueUnder(request, {
      job_id: request.jobId,
      credential_id: old.id,
      provisioner: this.#provisioner.name,
      handle,
      attempts: 0,
      next_at: 0,
    }, (issued) => {
      if (this.#live.get(request.jobId) !== creds) return undefined;
      const fresh = { ...issued, id: old.id, handle };
      creds[0] = fresh;
      return fresh;
    });
    if (!fresh) {
      // The job ended while the fresh credential was being issued: nobody
      // will ever receive it, so revoke it now (its record stays until then).
      await this.#revokeOne(request.jobId, handle);
      throw new ArcpError("JOB_NOT_FOUND", `job ${request.jobId} ended during the rotation`);
    }
    // A failed attempt is retried by the retry loop: the old handle is no longer in use.
    await this.#revokeOne(request.jobId, old.handle);
    const { handle: _h, ...credential } = fresh;
    return credential;
  }

  /**
   * Revokes every credential of a job that reached a terminal state: one
   * attempt now (bounded wait), retries later on failure. Purges the values.
   *
   * @param jobId the job
   * @returns resolves after the first attempt (or the wait bound)
   */
  async revokeJob(jobId: string): Promise<void> {
    this.#live.delete(jobId);
    const deadline = Date.now() + this.#revokeWaitMs;
    // A rotation in flight: let its issue land so its key is revoked too.
    const inflight = [...this.#issuing.values()].filter((i) => i.jobId === jobId);
    if (inflight.length > 0) await this.#within(Promise.all(inflight.map((i) => i.done)), deadline);
    const pending: Array<Promise<void>> = [];
    for await (const record of this.#store.revocations.list(jobId)) {
      // Still issuing past the wait: the rotation revokes it once the issue returns.
      if (this.#issuing.has(record.handle)) continue;
      pending.push(this.#revokeOne(jobId, record.handle));
    }
    if (pending.length > 0) await this.#within(Promise.all(pending), deadline);
  }

  /** Waits for `work`, but not past `deadline` (the timer is cleared either way). */
  async #within(work: Promise<unknown>, deadline: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        work,
        new Promise((r) => timer = setTimeout(r, Math.max(0, deadline - Date.now()))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether a record names a credential that is being issued or is live. */
  #inUse(r: RevocationRecord): boolean {
    return this.#issuing.has(r.handle) ||
      (this.#live.get(r.job_id)?.some((c) => c.handle === r.handle) ?? false);
  }

  /** One revocation attempt; concurrent calls for the same handle share it. */
  #revokeOne(jobId: string, handle: string): Promise<void> {
    const running = this.#revoking.get(handle);
    if (running) return running;
    const attempt = this.#attemptRevoke(jobId, handle).finally(() => {
      this.#revoking.delete(handle);
    });
    this.#revoking.set(handle, attempt);
    return attempt;
  }

  async #attemptRevoke(jobId: string, handle: string): Promise<void> {
    const record = await this.#store.revocations.get(jobId, handle);
    if (!record || record.failed) return;
    try {
      await this.#provisioner.revoke(record.handle);
      await this.#store.revocations.delete(jobId, handle);
    } catch (err) {
      this.onFailure?.("revoke");
      const attempts = record.attempts + 1;
      const permanent = err instanceof RevocationError && err.permanent;
      const message = err instanceof Error ? err.message : String(err);
      if (permanent) {
        this.#log.error(
          "credential revocation failed permanently; revoke it at the upstream by hand",
          {
            job_id: jobId,
            credential_id: record.credential_id,
            handle: record.handle,
            provisioner: record.provisioner,
            error: message,
          },
        );
      }
      const backoff = Math.min(this.#maxBackoffMs, 500 * 2 ** Math.min(attempts, 20));
      await this.#store.revocations.put({
        ...record,
        attempts,
        next_at: Date.now() + backoff,
        ...(permanent ? { failed: message } : {}),
      });
    }
  }

  /**
   * Retries revocations that are due: those of ended jobs whose last attempt
   * failed, credentials rotated out of live jobs, failed issues, and those
   * of jobs that were live when the process died. A credential that is
   * being issued or is a live job's current one is left alone.
   *
   * @returns resolves when this round is done
   */
  async retryDue(): Promise<void> {
    if (this.#retrying) return;
    this.#retrying = true;
    try {
      const now = Date.now();
      for await (const r of this.#store.revocations.list()) {
        if (r.failed || r.next_at > now || this.#inUse(r)) continue;
        await this.#revokeOne(r.job_id, r.handle);
      }
    } catch (err) {
      this.#log.warn("credential revocation round failed", { error: String(err) });
    } finally {
      this.#retrying = false;
    }
  }

  /**
   * Revocations not yet done (for operators and tests).
   *
   * @returns the outstanding records, without secrets
   */
  async outstanding(): Promise<RevocationRecord[]> {
    const out: RevocationRecord[] = [];
    for await (const r of this.#store.revocations.list()) out.push(r);
    return out;
  }

  /** Stops the retry timer. */
  close(): void {
    clearInterval(this.#timer);
  }
}
