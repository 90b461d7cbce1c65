/**
 * Lease grammar (ARCP.md §5.2, §5.4): capability namespaces mapped to glob
 * patterns, with the caps that keep a lease small enough to store.
 *
 * @module
 */
import { z } from "zod";

/** The namespaces ARCP reserves. */
export const RESERVED_NAMESPACES = [
  "fs.read",
  "fs.write",
  "net.fetch",
  "tool.call",
  "agent.delegate",
  "cost.budget",
  "model.use",
] as const;

/** Vendor namespaces: `x-vendor.<org>.<name>`. */
const VENDOR_NAMESPACE = /^x-vendor\.[a-z0-9][a-z0-9_-]*\.[a-z0-9][a-z0-9._-]*$/;

/** `CUR:decimal`, e.g. `USD:5.00` or `credits:1000`. */
export const AMOUNT: RegExp = /^([A-Za-z][A-Za-z0-9_-]{0,31}):(\d{1,18}(?:\.\d{1,18})?)$/;

/** Caps that bound a stored lease well under one KV value. */
export const LEASE_LIMITS = {
  namespaces: 32,
  patternsPerNamespace: 64,
  patternLength: 1024,
} as const;

/** A lease: namespace → patterns. */
export type Lease = Record<string, string[]>;

/**
 * Whether a namespace is reserved or a well-formed vendor namespace.
 *
 * @param ns the namespace
 * @returns true when a lease may use it
 */
export function isValidNamespace(ns: string): boolean {
  return (RESERVED_NAMESPACES as readonly string[]).includes(ns) || VENDOR_NAMESPACE.test(ns);
}

/**
 * Schema of a lease request or effective lease. A `__proto__` key is refused
 * here, before the record is parsed: zod's record parsing drops it, which
 * would silently grant a lease other than the one asked for.
 */
export const LeaseSchema: z.ZodType<Lease> = z.unknown().superRefine((raw, ctx) => {
  if (raw !== null && typeof raw === "object" && Object.hasOwn(raw, "__proto__")) {
    ctx.addIssue({
      code: "custom",
      path: ["__proto__"],
      message: "unknown namespace (reserved names or x-vendor.<org>.<name>)",
    });
  }
}).pipe(
  z.record(
    z.string(),
    z.array(
      z.string().min(1).max(LEASE_LIMITS.patternLength).refine((p) => !p.includes("\0"), {
        message: "must not contain NUL",
      }),
    ).max(LEASE_LIMITS.patternsPerNamespace),
  ).superRefine((lease, ctx) => {
    const names = Object.keys(lease);
    if (names.length > LEASE_LIMITS.namespaces) {
      ctx.addIssue({ code: "custom", message: `at most ${LEASE_LIMITS.namespaces} namespaces` });
    }
    for (const ns of names) {
      if (!isValidNamespace(ns)) {
        ctx.addIssue({
          code: "custom",
          path: [ns],
          message: "unknown namespace (reserved names or x-vendor.<org>.<name>)",
        });
      }
    }
    for (const [i, amount] of (lease["cost.budget"] ?? []).entries()) {
      if (!AMOUNT.test(amount)) {
        ctx.addIssue({
          code: "custom",
          path: ["cost.budget", i],
          message: "amount must look like CUR:decimal, e.g. USD:5.00",
        });
      }
    }
  }),
);
