import { deepEqual, equal, notEqual } from "assert";
import {
  ALWAYS_DENIED_PATHS,
  permissionsForLease,
  staticPrefix,
  type WorkerPermissions,
} from "./permissions.ts";

/** What a probe worker is asked to try. */
type Probe =
  | { read: string }
  | { write: string }
  | { fetch: string }
  | { query: string };

/**
 * The probe: tries each operation and reports `ok`, the error's name
 * (`NotCapable` when Deno's permission check refused it), or a permission
 * query's state.
 */
const PROBE = `
self.onmessage = async (e) => {
  const out = [];
  for (const p of e.data) {
    try {
      if ("read" in p) await Deno.readTextFile(p.read);
      else if ("write" in p) await Deno.writeTextFile(p.write, "w");
      else if ("fetch" in p) await (await fetch(p.fetch)).text();
      else {
        out.push((await Deno.permissions.query({ name: "net", host: p.query })).state);
        continue;
      }
      out.push("ok");
    } catch (err) {
      out.push(err.name);
    }
  }
  self.postMessage(out);
};`;

/** Runs the probes in a real worker with the given permissions. */
async function inWorker(permissions: unknown, probes: Probe[]): Promise<string[]> {
  const worker = new Worker(`data:application/javascript,${encodeURIComponent(PROBE)}`, {
    type: "module",
    // deno-lint-ignore no-explicit-any
    deno: { permissions } as any,
  });
  try {
    return await new Promise<string[]>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<string[]>) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(e.message));
      };
      worker.postMessage(probes);
    });
  } finally {
    worker.terminate();
  }
}

/** A loopback server answering with its own name. */
function serve(name: string): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response(name));
}

async function tempTree(): Promise<{ root: string } & AsyncDisposable> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_perm_" }));
  await Deno.mkdir(`${root}/lease/out`, { recursive: true });
  await Deno.mkdir(`${root}/kv`);
  await Deno.mkdir(`${root}/secret`);
  await Deno.writeTextFile(`${root}/lease/a.txt`, "a");
  await Deno.writeTextFile(`${root}/kv/db`, "kv");
  await Deno.writeTextFile(`${root}/secret/s.txt`, "s");
  return { root, [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }) };
}

const NONE = { env: false, run: false, ffi: false, sys: false, import: false } as const;

Deno.test("staticPrefix keeps every segment before the first wildcard, and only canonical prefixes", () => {
  equal(staticPrefix("/srv/data/**"), "/srv/data");
  equal(staticPrefix("/srv/data/*.csv"), "/srv/data");
  equal(staticPrefix("/srv/data/file.txt"), "/srv/data/file.txt");
  equal(staticPrefix("/srv/da?a/x"), "/srv");
  equal(staticPrefix("/srv/[ab]/x"), "/srv/[ab]/x", "`[` is literal in lease globs");
  equal(staticPrefix("/**"), "/");
  equal(staticPrefix("/"), "/");
  equal(staticPrefix("relative/**"), undefined);
  equal(staticPrefix("**/x"), undefined);
  equal(staticPrefix("/srv/data/../../etc/**"), undefined, "no canonical path matches it");
  equal(staticPrefix("/srv/./data/**"), undefined);
  equal(staticPrefix("/srv//data/**"), undefined);
  equal(staticPrefix("/srv/data/"), undefined);
  equal(
    staticPrefix("/srv/*/../../etc/**"),
    "/srv",
    "dots after the wildcard stay under the prefix",
  );
});

Deno.test("permissionsForLease grants only what the lease names and denies everything else", () => {
  const p = permissionsForLease({
    "fs.read": ["/srv/data/**", "/srv/data/*.csv", "relative/x"],
    "fs.write": ["/srv/out/*.txt"],
    "net.fetch": [
      "https://api.example.com/**",
      "http://127.0.0.1:9000/x",
      "https://*.cdn.example.com/**",
    ],
    "tool.call": ["**"],
  });
  deepEqual(p, {
    read: ["/srv/data"],
    write: ["/srv/out"],
    net: false,
    ...NONE,
  });
  deepEqual(permissionsForLease({}), { read: false, write: false, net: false, ...NONE });
});

Deno.test("a granted prefix that contains or lies inside a denied path is not granted", () => {
  const deny = { denyPaths: ["/var/lib/arcp"] };
  const read = (glob: string) => permissionsForLease({ "fs.read": [glob] }, deny).read;
  equal(read("/**"), false);
  equal(read("/var/**"), false);
  equal(read("/var/lib/*"), false);
  equal(read("/var/lib/arcp/**"), false);
  equal(read("/var/lib/arcp/data/kv.sqlite"), false);
  deepEqual(read("/var/lib/arcp-other/**"), ["/var/lib/arcp-other"]);
  deepEqual(read("/var/log/**"), ["/var/log"]);
  deepEqual(
    permissionsForLease({ "fs.read": ["/var/log/**", "/**"], "fs.write": ["/var/**"] }, deny),
    { read: ["/var/log"], write: false, net: false, ...NONE },
    "only the offending globs lose their grant",
  );
});

Deno.test("the host's own /proc entries are denied under every name, whatever the caller passes", () => {
  deepEqual([...ALWAYS_DENIED_PATHS], ["/proc/self", "/proc/thread-self", "/dev/fd"]);
  const read = (glob: string) => permissionsForLease({ "fs.read": [glob] }).read;
  equal(read("/**"), false);
  equal(read("/proc/**"), false);
  equal(read("/proc/self/environ"), false);
  equal(read(`/proc/${Deno.pid}/**`), false, "/proc/self resolves to /proc/<pid>");
  equal(read("/dev/**"), false);
  deepEqual(read("/dev/null"), ["/dev/null"]);
  // Other /proc entries depend on the runtime's own flags: without --allow-all,
  // Deno refuses to resolve anything under /proc, so they are denied too.
});

Deno.test("denied paths are compared under their real names, and relative ones from the cwd", async () => {
  await using t = await tempTree();
  await Deno.symlink(`${t.root}/kv`, `${t.root}/alias`);
  await Deno.symlink(`${t.root}/kv`, `${t.root}/lease/kvlink`);
  const deny = { denyPaths: [`${t.root}/kv`] };
  equal(permissionsForLease({ "fs.read": [`${t.root}/alias/**`] }, deny).read, false);
  equal(permissionsForLease({ "fs.read": [`${t.root}/alias/db`] }, deny).read, false);
  equal(
    permissionsForLease({ "fs.read": [`${t.root}/kv/**`] }, { denyPaths: [`${t.root}/alias`] })
      .read,
    false,
    "a denied path given by its symlink",
  );
  deepEqual(
    permissionsForLease({ "fs.read": [`${t.root}/lease/**`] }, deny).read,
    [`${t.root}/lease`],
    "a symlink deeper inside a grant is the inner wall's business",
  );
  const cwd = Deno.cwd();
  Deno.chdir(t.root);
  try {
    equal(
      permissionsForLease({ "fs.write": [`${t.root}/kv/**`] }, { denyPaths: ["./kv"] }).write,
      false,
    );
  } finally {
    Deno.chdir(cwd);
  }
});

Deno.test("measured: a worker reads and writes only under the granted prefixes", async () => {
  await using t = await tempTree();
  await using server = serve("A");
  const perms = permissionsForLease({
    "fs.read": [`${t.root}/lease/**`],
    "fs.write": [`${t.root}/lease/out/*.txt`],
  });
  const got = await inWorker(perms, [
    { read: `${t.root}/lease/a.txt` },
    { read: `${t.root}/secret/s.txt` },
    { read: `${t.root}/lease/../secret/s.txt` },
    { write: `${t.root}/lease/out/r.txt` },
    { write: `${t.root}/lease/a.txt` },
    { read: "/etc/hostname" },
    { fetch: `http://127.0.0.1:${server.addr.port}/` },
  ]);
  deepEqual(got, [
    "ok",
    "NotCapable",
    "NotCapable",
    "ok",
    "NotCapable",
    "NotCapable",
    "NotCapable",
  ]);
  equal(await Deno.readTextFile(`${t.root}/lease/out/r.txt`), "w");
});

Deno.test("measured: worker permissions have no deny list, so a denied sub-path forces no grant", async () => {
  await using t = await tempTree();
  // What Deno offers: unknown keys are ignored, the sub-path stays readable.
  const naive = await inWorker(
    {
      read: [t.root],
      denyRead: [`${t.root}/kv`],
      deny_read: [`${t.root}/kv`],
      write: false,
      net: false,
      ...NONE,
    },
    [{ read: `${t.root}/kv/db` }],
  );
  deepEqual(naive, ["ok"]);
  // What permissionsForLease does instead.
  const perms = permissionsForLease(
    { "fs.read": [`${t.root}/**`, `${t.root}/lease/**`] },
    { denyPaths: [`${t.root}/kv`] },
  );
  deepEqual(perms.read, [`${t.root}/lease`]);
  deepEqual(
    await inWorker(perms, [{ read: `${t.root}/kv/db` }, { read: `${t.root}/lease/a.txt` }]),
    ["NotCapable", "ok"],
  );
});

Deno.test("measured: a symlink already inside a granted dir leads out of it (outer wall only)", async () => {
  await using t = await tempTree();
  await Deno.symlink(`${t.root}/secret`, `${t.root}/lease/link`);
  const perms = permissionsForLease({ "fs.read": [`${t.root}/lease/**`] });
  deepEqual(await inWorker(perms, [{ read: `${t.root}/lease/link/s.txt` }]), ["ok"]);
});

Deno.test("the permissions object is accepted by a real worker as is, with no net from a lease", async () => {
  const perms: WorkerPermissions = permissionsForLease({
    "fs.read": ["/srv/never/**"],
    "net.fetch": ["https://*.example.com/**", "https://example.com/**", "https://[::1]/**"],
  });
  equal(perms.net, false);
  notEqual((await inWorker(perms, [{ query: "example.com:443" }]))[0], "granted");
});

Deno.test("measured: a worker's net grant for host:port also lets it listen there", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const code = `self.onmessage = () => {
    try { Deno.listen({ hostname: "127.0.0.1", port: ${port} }).close(); self.postMessage("listened"); }
    catch (err) { self.postMessage(err.name); }
  };`;
  const worker = new Worker(`data:application/javascript,${encodeURIComponent(code)}`, {
    type: "module",
    deno: {
      permissions: { net: [`127.0.0.1:${port}`], read: false, write: false, ...NONE },
      // deno-lint-ignore no-explicit-any
    } as any,
  });
  try {
    const got = await new Promise<string>((resolve) => {
      worker.onmessage = (e: MessageEvent<string>) => resolve(e.data);
      worker.postMessage(null);
    });
    equal(
      got,
      "listened",
      "if Deno ever splits listen from connect, the egress proxy can be revisited",
    );
  } finally {
    worker.terminate();
  }
});
