/**
 * Identity behind `session.hello`: JWTs verified against a JWKS this test
 * serves (real RS256 and ES256 keys, rotated), an HS256 secret, static
 * tokens beside them, and the opt-in anonymous scheme with its own caps.
 * Every refusal is `UNAUTHENTICATED` with a specific reason and message,
 * and never quotes the token.
 */
import { deepEqual, equal, match, ok } from "assert";
import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
  UnsecuredJWT,
} from "jose";
import { startChildServer, startServer, type TestServer } from "../../testing/server.ts";
import { type Env, WsClient } from "../../testing/ws_client.ts";
import { CaptureLogger, sample, scrape } from "../operations/_observe.ts";
import type { RuntimeOptions } from "../../mod.ts";

const ISSUER = "https://idp.example.test";
const AUDIENCE = "arcp";

type Key = Awaited<ReturnType<typeof generateKeyPair>> & { kid: string; alg: string };

async function newKey(alg: "RS256" | "ES256" | "RS384", kid: string): Promise<Key> {
  return { ...(await generateKeyPair(alg, { extractable: true })), kid, alg };
}

async function publicJwk(key: Key): Promise<JWK> {
  return { ...(await exportJWK(key.publicKey)), kid: key.kid, alg: key.alg, use: "sig" };
}

/** A JWKS endpoint on a free loopback port whose key set the test replaces at will. */
class JwksServer {
  keys: JWK[] = [];
  fetches = 0;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
      this.fetches++;
      return Response.json({ keys: this.keys });
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/jwks`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}

/** Claims of a valid token: issuer, audience, an hour to live, `sub` and `email`. */
function claims(extra: JWTPayload = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: "user-123",
    email: "carol@example.test",
    iat: now,
    exp: now + 3600,
    ...extra,
  };
}

async function sign(key: Key, payload: JWTPayload = claims()): Promise<string> {
  return await new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(
    key.privateKey,
  );
}

/** Says hello with a token; the welcome or the refusal. */
async function hello(server: TestServer, token: string): Promise<Env> {
  await using c = new WsClient(server.url);
  return await c.hello(token);
}

/** Asserts a refusal: UNAUTHENTICATED, its reason, a message matching, the token nowhere in it. */
function refused(answer: Env, reason: string, message: RegExp, token: string): void {
  equal(answer.type, "session.error", JSON.stringify(answer.payload));
  equal(answer.payload.code, "UNAUTHENTICATED");
  equal(answer.payload.details?.reason, reason, JSON.stringify(answer.payload));
  match(answer.payload.message, message);
  ok(!JSON.stringify(answer.payload).includes(token.split(".")[2] || token), "token echoed");
}

/** The principal the runtime logged for a welcomed session. */
async function principalOf(log: CaptureLogger, sessionId: string): Promise<unknown> {
  const line = await log.waitFor(
    (r) => r.message === "session opened" && r.fields.session_id === sessionId,
    5_000,
    "the session opened line",
  );
  return line.fields.principal;
}

async function jwtServer(
  jwks: JwksServer,
  log: CaptureLogger,
  more: Partial<RuntimeOptions> = {},
): Promise<TestServer> {
  return await startServer({
    sandbox: "worker",
    logger: log,
    auth: {
      jwt: {
        jwksUrl: jwks.url,
        issuer: ISSUER,
        audience: AUDIENCE,
        principalClaim: "email",
        // Every unknown kid refetches at once, so rotation is seen without waiting.
        jwksCooldownMs: 0,
      },
    },
    ...more,
  });
}

Deno.test("RS256 and ES256 tokens from a JWKS are welcomed with the configured claim as principal; static tokens still work", async () => {
  await using jwks = new JwksServer();
  const rs = await newKey("RS256", "rs-1");
  const es = await newKey("ES256", "es-1");
  jwks.keys = [await publicJwk(rs), await publicJwk(es)];
  const log = new CaptureLogger();
  await using server = await jwtServer(jwks, log);

  for (const key of [rs, es]) {
    await using c = new WsClient(server.url);
    const w = await c.hello(await sign(key));
    equal(w.type, "session.welcome", JSON.stringify(w.payload));
    equal(await principalOf(log, c.sessionId), "carol@example.test");
  }
  await using s = new WsClient(server.url);
  equal((await s.hello("alice-token")).type, "session.welcome");
  equal(await principalOf(log, s.sessionId), "alice");
  const opened = log.matching((r) => r.message === "session opened");
  deepEqual(opened.map((r) => r.fields.auth), ["jwt", "jwt", "token"]);
});

Deno.test("key rotation: a token of a new kid fetches the new set; the removed key's tokens are refused", async () => {
  await using jwks = new JwksServer();
  const old = await newKey("RS256", "2026-01");
  jwks.keys = [await publicJwk(old)];
  const log = new CaptureLogger();
  await using server = await jwtServer(jwks, log);
  const oldToken = await sign(old);
  equal((await hello(server, oldToken)).type, "session.welcome");
  const fetched = jwks.fetches;

  const rotated = await newKey("ES256", "2026-02");
  jwks.keys = [await publicJwk(rotated)];
  const w = await hello(server, await sign(rotated));
  equal(w.type, "session.welcome", JSON.stringify(w.payload));
  ok(jwks.fetches > fetched, "the unknown kid did not refetch the set");
  refused(
    await hello(server, oldToken),
    "no_matching_key",
    /no key of the identity provider matches/,
    oldToken,
  );
});

Deno.test("expired, not yet valid, wrong audience, wrong issuer, bad signature, missing exp, principal claim absent: each refused for what it is", async () => {
  await using jwks = new JwksServer();
  const key = await newKey("RS256", "k1");
  jwks.keys = [await publicJwk(key)];
  const log = new CaptureLogger();
  await using server = await jwtServer(jwks, log);
  const now = Math.floor(Date.now() / 1000);
  const forger = await newKey("RS256", "k1");
  const noExp = claims();
  delete noExp.exp;
  const noEmail = claims();
  delete noEmail.email;
  const cases: Array<[string, string, RegExp]> = [
    [await sign(key, claims({ exp: now - 3600, iat: now - 7200 })), "expired", /token expired/],
    [await sign(key, claims({ nbf: now + 3600 })), "not_yet_valid", /not valid yet \(nbf\)/],
    [await sign(key, claims({ aud: "someone-else" })), "wrong_audience", /audience is not "arcp"/],
    [
      await sign(key, claims({ iss: "https://evil.test" })),
      "wrong_issuer",
      /issuer is not "https:\/\/idp\.example\.test"/,
    ],
    [await sign(forger), "bad_signature", /signature does not verify/],
    [await sign(key, noExp), "bad_claims", /claim "exp" is missing or invalid/],
    [await sign(key, noEmail), "bad_claims", /claim "email" must be a string/],
  ];
  for (const [token, reason, message] of cases) {
    refused(await hello(server, token), reason, message, token);
  }
  // Each refusal is one log line with its reason; none quotes a token.
  const lines = log.matching((r) => r.message === "hello rejected");
  deepEqual(lines.map((r) => r.fields.reason), cases.map(([, reason]) => reason));
  for (const [token] of cases) ok(!log.text().includes(token.split(".")[2]), "a token was logged");
  const metrics = await (await fetch(`${server.http}/metrics`)).text();
  match(metrics, /arcp_hellos_rejected_total\{reason="expired"\} 1/);
});

Deno.test("algorithms are explicit: RS384 when RS256/ES256 are allowed, alg none, and an HS256 token keyed with the public key are refused", async () => {
  await using jwks = new JwksServer();
  const key = await newKey("RS256", "k1");
  const rs384 = await newKey("RS384", "k2");
  jwks.keys = [await publicJwk(key), await publicJwk(rs384)];
  const log = new CaptureLogger();
  await using server = await jwtServer(jwks, log);

  const wrongAlg = await sign(rs384);
  refused(
    await hello(server, wrongAlg),
    "algorithm_not_allowed",
    /"RS384" is not allowed/,
    wrongAlg,
  );

  const none = new UnsecuredJWT(claims()).encode();
  refused(await hello(server, none), "algorithm_not_allowed", /"none" is not allowed/, none);

  // The classic confusion: the provider's public key (which anyone has) used as an HMAC secret.
  const pem = new TextEncoder().encode(await exportSPKI(key.publicKey));
  const confused = await new SignJWT(claims()).setProtectedHeader({ alg: "HS256", kid: "k1" })
    .sign(pem);
  refused(
    await hello(server, confused),
    "algorithm_not_allowed",
    /"HS256" is not allowed \(allowed: RS256, ES256\)/,
    confused,
  );
});

Deno.test("HS256 with a secret: the default claim sub is the principal; a token of another secret is refused", async () => {
  const secret = "a-shared-secret-of-at-least-32-bytes!!";
  const log = new CaptureLogger();
  await using server = await startServer({
    sandbox: "worker",
    logger: log,
    auth: { jwt: { secret, issuer: ISSUER } },
  });
  const token = await new SignJWT(claims()).setProtectedHeader({ alg: "HS256" })
    .sign(new TextEncoder().encode(secret));
  await using c = new WsClient(server.url);
  equal((await c.hello(token)).type, "session.welcome");
  equal(await principalOf(log, c.sessionId), "user-123");
  const other = await new SignJWT(claims()).setProtectedHeader({ alg: "HS256" })
    .sign(new TextEncoder().encode("another-secret-that-is-also-32-bytes-long"));
  refused(await hello(server, other), "bad_signature", /signature does not verify/, other);
  // Not a JWT at all, and no such static token: the plain refusal.
  refused(await hello(server, "nope"), "bad_token", /bearer token not recognised/, "nope");
  // The management API authenticates with the same chain.
  const whoami = (t: string) =>
    fetch(`${server.http}/v1/whoami`, { headers: { authorization: `Bearer ${t}` } });
  const me = await whoami(token);
  equal(me.status, 200);
  deepEqual(await me.json(), { principal: "user-123", admin: false });
  const stranger = await whoami(other);
  equal(stranger.status, 401);
  await stranger.body?.cancel();
});

Deno.test("a JWKS that is down or never answers: a clear UNAUTHENTICATED, no hang, the runtime serves on", async () => {
  const key = await newKey("ES256", "k1");
  const token = await sign(key);

  // Down: nothing listens on the port any more.
  const gone = new JwksServer();
  const goneUrl = gone.url;
  await gone[Symbol.asyncDispose]();
  const log = new CaptureLogger();
  await using down = await startServer({
    sandbox: "worker",
    logger: log,
    auth: { jwt: { jwksUrl: goneUrl, issuer: ISSUER, audience: AUDIENCE } },
  });
  refused(
    await hello(down, token),
    "jwks_unavailable",
    /identity provider's keys are unavailable: JWKS could not be fetched.*try again later/,
    token,
  );

  // Silent: it accepts the request and never answers; the fetch is given up after the timeout.
  const never = Promise.withResolvers<void>();
  const silent = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    await never.promise;
    return new Response("late");
  });
  try {
    await using stuck = await startServer({
      sandbox: "worker",
      logger: log,
      auth: {
        jwt: { jwksUrl: `http://127.0.0.1:${silent.addr.port}/jwks`, jwksTimeoutMs: 300 },
      },
    });
    refused(
      await hello(stuck, token),
      "jwks_unavailable",
      /JWKS did not answer within 300 ms/,
      token,
    );
    // Static tokens are untouched by the provider's outage.
    equal((await hello(stuck, "alice-token")).type, "session.welcome");
  } finally {
    never.resolve();
    await silent.shutdown();
  }
  // An outage is the runtime's side: no client is tarpitted for it.
  ok(log.matching((r) => r.message === "hello rejected").every((r) => !r.fields.throttled_ms));
});

/** Says an anonymous hello (no token); the welcome or the refusal. */
async function anonymousHello(c: WsClient, resume?: Record<string, unknown>): Promise<Env> {
  await c.opened();
  c.send("session.hello", {
    client: { name: "test", version: "0" },
    auth: { scheme: "anonymous" },
    capabilities: { encodings: ["json"], features: ["ack", "list_jobs"] },
    ...(resume ? { resume } : {}),
  });
  const w = await c.next(
    (e) => e.type === "session.welcome" || e.type === "session.error",
    10_000,
    "welcome",
  );
  if (w.type === "session.welcome") c.sessionId = w.session_id!;
  return w;
}

Deno.test("anonymous hellos are refused by default", async () => {
  await using server = await startServer({ sandbox: "worker" });
  await using c = new WsClient(server.url);
  const w = await anonymousHello(c);
  equal(w.type, "session.error");
  equal(w.payload.code, "UNAUTHENTICATED");
  equal(w.payload.details?.reason, "anonymous_disabled");
  match(w.payload.message, /anonymous sessions are not enabled/);
});

Deno.test("anonymous on: each hello is its own anon: principal, with its own caps; a resume keeps the principal", async () => {
  const log = new CaptureLogger();
  await using server = await startServer({
    sandbox: "worker",
    logger: log,
    auth: { anonymous: { maxLiveJobs: 2 } },
  });
  await using a = new WsClient(server.url);
  const welcome = await anonymousHello(a);
  equal(welcome.type, "session.welcome", JSON.stringify(welcome.payload));
  const principal = await principalOf(log, a.sessionId);
  match(String(principal), /^anon:[0-9A-Z]{26}$/);

  const jobs = [];
  for (let i = 0; i < 2; i++) {
    const acc = await a.submit({ agent: "sleeper", input: { ms: 60_000 } });
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    jobs.push(acc.job_id!);
  }
  const third = await a.submit({ agent: "sleeper", input: { ms: 60_000 } });
  equal(third.type, "job.error");
  equal(third.payload.details.cap, "concurrent_jobs");
  equal(third.payload.details.limit, 2);

  // Another anonymous client is another principal, with caps of its own.
  await using b = new WsClient(server.url);
  equal((await anonymousHello(b)).type, "session.welcome");
  const other = await principalOf(log, b.sessionId);
  ok(other !== principal && String(other).startsWith("anon:"));
  equal((await b.submit({ agent: "echo", input: 1 })).type, "job.accepted");
  // A token's principal keeps the default cap.
  await using t = new WsClient(server.url);
  await t.hello("alice-token");
  const held: string[] = [];
  for (let i = 0; i < 3; i++) {
    const acc = await t.submit({ agent: "sleeper", input: { ms: 60_000 } });
    equal(acc.type, "job.accepted", JSON.stringify(acc.payload));
    held.push(acc.job_id!);
  }
  for (const id of held) t.send("job.cancel", {}, { job_id: id });
  for (const id of held) await t.untilTerminal(id);

  // The session resumes anonymously (its one session slot is taken over) with the same principal.
  await using again = new WsClient(server.url);
  const resumed = await anonymousHello(again, {
    session_id: a.sessionId,
    resume_token: welcome.payload.resume_token,
    last_event_seq: 0,
  });
  equal(resumed.type, "session.welcome", JSON.stringify(resumed.payload));
  const line = await log.waitFor(
    (r) => r.message === "session resumed" && r.fields.session_id === a.sessionId,
    5_000,
    "the resume line",
  );
  equal(line.fields.principal, principal);
  for (const id of jobs) again.send("job.cancel", {}, { job_id: id });
  for (const id of jobs) await again.untilTerminal(id);
});

Deno.test("anonymous sessions connected at once are capped together; token sessions are not counted", async () => {
  await using server = await startServer({
    sandbox: "worker",
    auth: { anonymous: { maxConnected: 2 } },
  });
  await using a = new WsClient(server.url);
  await using b = new WsClient(server.url);
  equal((await anonymousHello(a)).type, "session.welcome");
  equal((await anonymousHello(b)).type, "session.welcome");
  await using c = new WsClient(server.url);
  const third = await anonymousHello(c);
  equal(third.type, "session.error");
  equal(third.payload.code, "INTERNAL_ERROR");
  equal(third.payload.retryable, true);
  equal(third.payload.details.cap, "anonymous_sessions");
  equal(third.payload.details.limit, 2);
  await using t = new WsClient(server.url);
  equal((await t.hello("alice-token")).type, "session.welcome");

  // Once one anonymous connection is gone, another anonymous hello gets its place.
  await a.close();
  const deadline = Date.now() + 10_000;
  while (sample(await scrape(server.http), "arcp_sessions_connected") !== 2) {
    if (Date.now() > deadline) throw new Error("the closed session still counts as connected");
    await new Promise((r) => setTimeout(r, 50));
  }
  await using d = new WsClient(server.url);
  equal((await anonymousHello(d)).type, "session.welcome");
});

Deno.test("arcp serve with --jwt-secret-file and --allow-anonymous: HS256 tokens, anonymous hellos and the static tokens are welcomed; the secret is never printed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "arcp_jwt_serve_" });
  const secret = `serve-secret-${crypto.randomUUID()}`;
  await Deno.writeTextFile(`${dir}/jwt.secret`, `${secret}\n`);
  const child = await startChildServer(`${dir}/arcp.kv`, [
    "--jwt-secret-file",
    `${dir}/jwt.secret`,
    "--jwt-audience",
    AUDIENCE,
    "--allow-anonymous",
  ]);
  try {
    const token = await new SignJWT(claims({ iss: undefined })).setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(secret));
    for (const say of [(c: WsClient) => c.hello(token), (c: WsClient) => anonymousHello(c)]) {
      await using c = new WsClient(child.url);
      const w = await say(c);
      equal(w.type, "session.welcome", JSON.stringify(w.payload));
    }
    await using t = new WsClient(child.url);
    equal((await t.hello("alice-token")).type, "session.welcome");
    const wrongAudience = await new SignJWT(claims({ aud: "other" })).setProtectedHeader({
      alg: "HS256",
    }).sign(new TextEncoder().encode(secret));
    await using r = new WsClient(child.url);
    refused(
      await r.hello(wrongAudience),
      "wrong_audience",
      /audience is not "arcp"/,
      wrongAudience,
    );
  } finally {
    await child.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  ok(!child.output().includes(secret), "the secret was printed");
});
