import { deepEqual, equal, match } from "assert";
import { startServer } from "../../testing/server.ts";
import { connect, type Env, type WsClient } from "../../testing/ws_client.ts";

/** Submits a job and returns its terminal envelope. */
async function run(c: WsClient, payload: Record<string, unknown>): Promise<Env> {
  const acc = await c.submit(payload);
  equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
  return (await c.untilTerminal(acc.job_id!)).at(-1)!;
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A temp dir (real path) holding `sub/data.bin` with known bytes and an empty `sub/other/`. */
async function fileFixture(): Promise<
  { dir: string; path: string; bytes: Uint8Array<ArrayBuffer> }
> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "arcp_reader_" }));
  const bytes = new Uint8Array(70_000).map((_, i) => (i * 7919) % 251);
  const path = `${dir}/sub/data.bin`;
  await Deno.mkdir(`${dir}/sub/other`, { recursive: true });
  await Deno.writeFile(path, bytes);
  return { dir, path, bytes };
}

Deno.test("reader inside its fs.read lease returns the file's size and SHA-256", async () => {
  await using server = await startServer();
  const { dir, path, bytes } = await fileFixture();
  try {
    await using c = await connect(server.url);
    const end = await run(c, {
      agent: "reader",
      input: { path },
      lease_request: { "fs.read": [`${dir}/**`] },
    });
    equal(end.type, "job.result", JSON.stringify(end.payload));
    deepEqual(end.payload.result, {
      bytes: bytes.byteLength,
      sha256: hex(await crypto.subtle.digest("SHA-256", bytes)),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reader outside its fs.read lease is PERMISSION_DENIED", async () => {
  await using server = await startServer();
  const { dir } = await fileFixture();
  try {
    await using c = await connect(server.url);
    const end = await run(c, {
      agent: "reader",
      input: { path: "/etc/passwd" },
      lease_request: { "fs.read": [`${dir}/**`] },
    });
    equal(end.type, "job.error");
    equal(end.payload.final_status, "error");
    equal(end.payload.code, "PERMISSION_DENIED");
    equal(end.payload.retryable, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reader escaping its lease with .. is PERMISSION_DENIED", async () => {
  await using server = await startServer();
  const { dir, path } = await fileFixture();
  try {
    await using c = await connect(server.url);
    // The lease covers only dir/sub/other; the path climbs out of it to a sibling file.
    const end = await run(c, {
      agent: "reader",
      input: { path: `${dir}/sub/other/../data.bin` },
      lease_request: { "fs.read": [`${dir}/sub/other/**`] },
    });
    equal(end.type, "job.error");
    equal(end.payload.code, "PERMISSION_DENIED");
    // And the plain path with the right lease works, so the refusal was the lease's.
    const ok = await run(c, {
      agent: "reader",
      input: { path },
      lease_request: { "fs.read": [`${dir}/sub/*`] },
    });
    equal(ok.type, "job.result");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reader with no lease is PERMISSION_DENIED", async () => {
  await using server = await startServer();
  const { dir, path } = await fileFixture();
  try {
    await using c = await connect(server.url);
    const end = await run(c, { agent: "reader", input: { path } });
    equal(end.type, "job.error");
    equal(end.payload.code, "PERMISSION_DENIED");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fetcher with a net.fetch lease on the loopback server gets {status: 200, bytes}", async () => {
  const body = "x".repeat(1234);
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(body),
  );
  await using server = await startServer();
  await using c = await connect(server.url);
  const url = `http://127.0.0.1:${http.addr.port}`;
  const end = await run(c, {
    agent: "fetcher",
    input: { url: `${url}/data` },
    lease_request: { "net.fetch": [`${url}/**`] },
  });
  equal(end.type, "job.result", JSON.stringify(end.payload));
  deepEqual(end.payload.result, { status: 200, bytes: body.length });
});

Deno.test("fetcher without a lease is PERMISSION_DENIED", async () => {
  let hits = 0;
  await using http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    hits++;
    return new Response("secret");
  });
  await using server = await startServer();
  await using c = await connect(server.url);
  const end = await run(c, {
    agent: "fetcher",
    input: { url: `http://127.0.0.1:${http.addr.port}/data` },
  });
  equal(end.type, "job.error");
  equal(end.payload.code, "PERMISSION_DENIED");
  match(end.payload.message, /.+/);
  equal(hits, 0);
});

Deno.test("fetcher leased for one port may not reach another", async () => {
  let hits = 0;
  await using target = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    hits++;
    return new Response("secret");
  });
  await using leased = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("fine"),
  );
  await using server = await startServer();
  await using c = await connect(server.url);
  const end = await run(c, {
    agent: "fetcher",
    input: { url: `http://127.0.0.1:${target.addr.port}/data` },
    lease_request: { "net.fetch": [`http://127.0.0.1:${leased.addr.port}/**`] },
  });
  equal(end.type, "job.error");
  equal(end.payload.code, "PERMISSION_DENIED");
  equal(hits, 0);
});
