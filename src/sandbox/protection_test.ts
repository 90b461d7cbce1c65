import { equal, throws } from "assert";
import type { ArcpError } from "../protocol/errors.ts";
import { checkLeaseProtection, type Protection } from "./protection.ts";
import { denyFlags } from "./deny_flags.ts";

const protection: Protection = {
  paths: [
    { path: "/srv/arcp/data", access: "read-write", reason: "the KV store" },
    { path: "/srv/arcp/app", access: "write", reason: "the runtime's own modules" },
  ],
  listeners: [{ hostname: "127.0.0.1", port: 7777 }],
};

function refusal(lease: Record<string, string[]>): ArcpError {
  try {
    checkLeaseProtection(lease, protection);
  } catch (err) {
    return err as ArcpError;
  }
  throw new Error(`not refused: ${JSON.stringify(lease)}`);
}

Deno.test("a grant that contains, is or lies inside a protected path is refused", () => {
  for (
    const [pattern, how] of [
      ["/srv/**", "contains"],
      ["/srv/arcp/data", "is"],
      ["/srv/arcp/data/sub/*.kv", "lies inside"],
    ]
  ) {
    const e = refusal({ "fs.read": [pattern] });
    equal(e.code, "PERMISSION_DENIED");
    equal(e.details?.protected_path, "/srv/arcp/data");
    equal(e.message.includes(`which ${how} /srv/arcp/data (the KV store)`), true, e.message);
  }
});

Deno.test("code is refused to fs.write only; unrelated and non-canonical globs pass", () => {
  checkLeaseProtection({ "fs.read": ["/srv/arcp/app/**"] }, protection);
  equal(refusal({ "fs.write": ["/srv/arcp/app/src/**"] }).details?.pattern, "/srv/arcp/app/src/**");
  checkLeaseProtection({ "fs.read": ["/srv/other/**", "relative/**", "/srv/../x/**"] }, protection);
});

Deno.test("net.fetch naming the runtime's port under a loopback name is refused", () => {
  for (
    const host of ["127.0.0.1", "LOCALHOST", "[::1]", "0.0.0.0", "127.9.9.9", "[::ffff:127.0.0.1]"]
  ) {
    equal(refusal({ "net.fetch": [`http://${host}:7777/**`] }).details?.namespace, "net.fetch");
  }
  checkLeaseProtection(
    { "net.fetch": ["http://127.0.0.1:7778/**", "https://example.com/**"] },
    protection,
  );
});

Deno.test("deny flags: secrets read and write, code write, listeners net", () => {
  const flags = denyFlags(protection);
  equal(flags.includes("--deny-read=/srv/arcp/data"), true);
  equal(flags.includes("--deny-read=/srv/arcp/app"), false);
  equal(flags.includes("--deny-write=/srv/arcp/app"), true);
  equal(flags.some((f) => f.startsWith("--deny-net=") && f.includes("localhost:7777")), true);
  throws(() =>
    denyFlags({ paths: [{ path: "/a,b", access: "write", reason: "x" }], listeners: [] })
  );
});
