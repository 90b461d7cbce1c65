import { deepEqual, equal, ok, rejects, throws } from "assert";
import { ArcpError } from "../protocol/errors.ts";
import { compileGlob } from "./glob.ts";
import { canonicalPath, canonicalPathSync, canonicalUrl, normalizePath } from "./canonical.ts";

/**
 * A temp tree: `lease/` (the leased dir) holding `a.txt`, `link -> secret`,
 * `out -> secret/created.txt` (dangling, absolute) and `rel -> ../secret/r.txt`
 * (dangling, relative); `secret/` holding `s.txt`.
 */
async function tree(): Promise<{ root: string; real: string } & AsyncDisposable> {
  const root = await Deno.makeTempDir({ prefix: "arcp_canonical_" });
  await Deno.mkdir(`${root}/lease`);
  await Deno.mkdir(`${root}/secret`);
  await Deno.writeTextFile(`${root}/lease/a.txt`, "a");
  await Deno.writeTextFile(`${root}/secret/s.txt`, "s");
  await Deno.symlink(`${root}/secret`, `${root}/lease/link`);
  await Deno.symlink(`${root}/secret/created.txt`, `${root}/lease/out`);
  await Deno.symlink("../secret/r.txt", `${root}/lease/rel`);
  // The temp dir itself may sit behind a symlink (macOS /var -> /private/var).
  const real = await Deno.realPath(root);
  return {
    root,
    real,
    [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }),
  };
}

function isDenied(err: unknown): boolean {
  return err instanceof ArcpError && err.code === "PERMISSION_DENIED";
}

Deno.test("normalizePath resolves dot segments and slashes lexically", () => {
  equal(normalizePath("/srv//data/./x/../y/"), "/srv/data/y");
  equal(normalizePath("/../.."), "/");
  equal(normalizePath("/"), "/");
  equal(normalizePath("/a/b/../../../c"), "/c");
});

Deno.test("canonicalPath refuses relative paths and NUL bytes with PERMISSION_DENIED", async () => {
  for (const bad of ["", "relative/x", "./x", "../etc/passwd", "/tmp/a\0b"]) {
    await rejects(canonicalPath(bad), isDenied, JSON.stringify(bad));
    throws(() => canonicalPathSync(bad), isDenied, JSON.stringify(bad));
  }
});

Deno.test("canonicalPath resolves a symlink that leads out of the leased dir", async () => {
  await using t = await tree();
  const inLease = compileGlob(`${t.real}/lease/**`);
  const p = await canonicalPath(`${t.root}/lease/link/s.txt`);
  equal(p, `${t.real}/secret/s.txt`);
  ok(!inLease(p), "the canonical path is outside the lease");
  equal(await canonicalPath(`${t.root}/lease/link`), `${t.real}/secret`);
  equal(await canonicalPath(`${t.root}/lease/link/not-yet.txt`), `${t.real}/secret/not-yet.txt`);
});

Deno.test("`..` is resolved lexically before symlinks, as Deno does for worker paths", async () => {
  await using t = await tree();
  equal(await canonicalPath(`${t.root}/lease/link/../a.txt`), `${t.real}/lease/a.txt`);
  equal(await canonicalPath(`${t.root}/lease/../secret/s.txt`), `${t.real}/secret/s.txt`);
  equal(await canonicalPath(`${t.root}/lease/./a.txt/`), `${t.real}/lease/a.txt`);
});

Deno.test("paths that do not exist yet keep their tail; a file used as a dir is no escape", async () => {
  await using t = await tree();
  equal(await canonicalPath(`${t.root}/lease/new/dir/f.txt`), `${t.real}/lease/new/dir/f.txt`);
  equal(await canonicalPath(`${t.root}/lease/a.txt/x`), `${t.real}/lease/a.txt/x`);
});

Deno.test("a dangling symlink is followed to where a write through it would land", async () => {
  await using t = await tree();
  equal(await canonicalPath(`${t.root}/lease/out`), `${t.real}/secret/created.txt`);
  equal(await canonicalPath(`${t.root}/lease/rel`), `${t.real}/secret/r.txt`);
  // A write through the link lands there, or (without --allow-all, where Deno
  // will not create a file through a dangling link) nowhere: never elsewhere.
  try {
    await Deno.writeTextFile(`${t.root}/lease/out`, "x");
    equal(await Deno.readTextFile(`${t.real}/secret/created.txt`), "x");
  } catch (err) {
    ok(err instanceof Deno.errors.NotFound, String(err));
  }
});

Deno.test("a symlink loop is refused", async () => {
  await using t = await tree();
  await Deno.symlink(`${t.root}/lease/loop2`, `${t.root}/lease/loop1`);
  await Deno.symlink(`${t.root}/lease/loop1`, `${t.root}/lease/loop2`);
  await rejects(canonicalPath(`${t.root}/lease/loop1/x`), isDenied);
  throws(() => canonicalPathSync(`${t.root}/lease/loop1`), isDenied);
});

Deno.test("a symlink created after one check is caught by the check at operation time", async () => {
  await using t = await tree();
  const inLease = compileGlob(`${t.real}/lease/**`);
  const target = `${t.root}/lease/later/report.txt`;
  ok(inLease(await canonicalPath(target)), "before: inside the lease");

  // Someone with more authority than any agent plants a link afterwards.
  await Deno.symlink(`${t.root}/secret`, `${t.root}/lease/later`);
  const now = await canonicalPath(target);
  equal(now, `${t.real}/secret/report.txt`);
  ok(!inLease(now), "after: the operation-time check sees the escape");

  // A directory swapped for a link is caught the same way.
  await Deno.mkdir(`${t.root}/lease/swap`);
  ok(inLease(await canonicalPath(`${t.root}/lease/swap/x`)));
  await Deno.remove(`${t.root}/lease/swap`);
  await Deno.symlink("/", `${t.root}/lease/swap`);
  equal(await canonicalPath(`${t.root}/lease/swap/etc/passwd`), "/etc/passwd");
});

Deno.test("canonicalPathSync agrees with canonicalPath", async () => {
  await using t = await tree();
  for (
    const p of [
      `${t.root}/lease/a.txt`,
      `${t.root}/lease/link/s.txt`,
      `${t.root}/lease/link/../a.txt`,
      `${t.root}/lease/new/f`,
      `${t.root}/lease/out`,
      `${t.root}/lease/rel`,
      "/",
    ]
  ) {
    equal(canonicalPathSync(p), await canonicalPath(p), p);
  }
});

Deno.test("canonicalUrl normalizes scheme, host, port, dots and escapes and drops the fragment", () => {
  const cases: Array<[string, string]> = [
    [
      "HTTPS://API.Example.com:443/a/../%7euser/%2f?q=%3d#top",
      "https://api.example.com/~user/%2F?q=%3D",
    ],
    ["http://EXAMPLE.com:80/%41%62c", "http://example.com/Abc"],
    ["http://example.com:8080", "http://example.com:8080/"],
    ["https://example.com:80/", "https://example.com:80/"],
    ["http://x/a/.%2e/b", "http://x/b"],
    ["http://x/a/%2E%2E/%2e/b", "http://x/b"],
    ["http://x/a/./b/../../../c", "http://x/c"],
    ["http://0x7f.1/", "http://127.0.0.1/"],
    ["https://bücher.de/", "https://xn--bcher-kva.de/"],
    ["http://x/a b", "http://x/a%20b"],
    ["http://x/%zz%e2%82%ac", "http://x/%zz%E2%82%AC"],
    ["http://[::1]:80/", "http://[::1]/"],
    ["http://x/?", "http://x/"],
  ];
  for (const [input, want] of cases) {
    equal(canonicalUrl(input), want, input);
    equal(canonicalUrl(want), want, `idempotent: ${want}`);
  }
});

Deno.test("canonicalUrl refuses other schemes, userinfo and garbage with PERMISSION_DENIED", () => {
  for (
    const bad of [
      "ftp://example.com/",
      "file:///etc/passwd",
      "data:text/plain,hi",
      "javascript:alert(1)",
      "ws://example.com/",
      "not a url",
      "//example.com/x",
      "/relative",
    ]
  ) {
    throws(() => canonicalUrl(bad), isDenied, bad);
  }
  try {
    canonicalUrl("https://user:hunter2@example.com/");
    ok(false, "userinfo accepted");
  } catch (err) {
    ok(isDenied(err));
    ok(!JSON.stringify((err as ArcpError).toPayload()).includes("hunter2"), "no secret echoed");
  }
});

Deno.test("canonical URLs defeat host tricks against a wildcard-host glob", () => {
  const lease = compileGlob("https://*.example.com/**");
  ok(lease(canonicalUrl("HTTPS://A.Example.COM/x")));
  for (
    const trick of [
      "https://evil.com?.example.com/",
      "https://evil.com#.example.com/",
      "https://evil.com\\.example.com/",
      "https://evil.com/.example.com/",
      "https://a.example.com.evil.com/",
    ]
  ) {
    ok(!lease(canonicalUrl(trick)), trick);
  }
  deepEqual(
    ["https://a.example.com:443/", "https://a.example.com:8443/"].map((u) =>
      lease(canonicalUrl(u))
    ),
    [true, false],
    "an explicit non-default port is not covered by a port-less glob",
  );
});
