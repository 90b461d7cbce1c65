/**
 * Outstanding credential revocations: one record per issued credential
 * handle, written before the upstream is asked to issue and deleted once the
 * upstream confirmed the revocation, so a crash at any point still leads to a
 * revocation.
 *
 * @module
 */
import { keys } from "./keys.ts";

/** A revocation to carry out, as stored in KV. Holds no secret. */
export interface RevocationRecord {
  /** The job the credential was issued for. */
  job_id: string;
  /** The credential's id as the client saw it. */
  credential_id: string;
  /** The provisioner that issued it. */
  provisioner: string;
  /** The non-secret handle the upstream knows it by. */
  handle: string;
  /** Failed revocation attempts so far. */
  attempts: number;
  /** Epoch ms of the next attempt; 0 while the job is live. */
  next_at: number;
  /** Set once the upstream refused for good. */
  failed?: string;
}

/**
 * Reads and writes revocation records.
 *
 * @example
 * ```ts ignore
 * const revocations = new Revocations(await Deno.openKv(":memory:"));
 * for await (const r of revocations.list()) console.log(r.handle);
 * ```
 */
export class Revocations {
  #kv: Deno.Kv;

  /** @param kv the runtime's database */
  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /**
   * Writes (or replaces) one record.
   *
   * @param record the record, keyed by its job and handle
   * @returns resolves once durable
   */
  async put(record: RevocationRecord): Promise<void> {
    await this.#kv.set(keys.revocation(record.job_id, record.handle), record);
  }

  /**
   * One record.
   *
   * @param jobId the job
   * @param handle the credential's handle
   * @returns the record, or null once revoked
   */
  async get(jobId: string, handle: string): Promise<RevocationRecord | null> {
    return (await this.#kv.get<RevocationRecord>(keys.revocation(jobId, handle))).value;
  }

  /**
   * Drops a record whose revocation the upstream confirmed.
   *
   * @param jobId the job
   * @param handle the credential's handle
   * @returns resolves once durable
   */
  async delete(jobId: string, handle: string): Promise<void> {
    await this.#kv.delete(keys.revocation(jobId, handle));
  }

  /**
   * Outstanding records, of one job or of all.
   *
   * @param jobId only this job's, when given
   * @returns the records in key order
   */
  async *list(jobId?: string): AsyncGenerator<RevocationRecord> {
    const prefix = jobId === undefined ? keys.revocationsAll() : keys.revocations(jobId);
    for await (const entry of this.#kv.list<RevocationRecord>({ prefix })) yield entry.value;
  }
}
