import { deepEqual, equal, ok } from "assert";
import { ArcpError } from "../protocol/errors.ts";
import {
  authenticateBearer,
  type Authenticator,
  AuthenticatorChain,
  authError,
  type Identity,
  TokenAuthenticator,
  TokenTable,
} from "./auth.ts";

const tokens = new TokenAuthenticator(new TokenTable({ "alice-token": "alice" }));

/** An authenticator answering every token the same way. */
const answering = (answer: Identity | ArcpError): Authenticator => ({
  authenticate: () => Promise.resolve(answer),
});

Deno.test("the chain tries tokens first and returns the first identity", async () => {
  const chain = new AuthenticatorChain([
    tokens,
    answering({ principal: "from-jwt", scheme: "jwt" }),
  ]);
  deepEqual(await chain.authenticate("alice-token"), { principal: "alice", scheme: "token" });
  deepEqual(await chain.authenticate("other"), { principal: "from-jwt", scheme: "jwt" });
});

Deno.test("when all refuse, the specific refusal wins over 'not recognised'", async () => {
  const chain = new AuthenticatorChain([tokens, answering(authError("expired", "token expired"))]);
  const refused = await chain.authenticate("x");
  ok(refused instanceof ArcpError);
  equal(refused.code, "UNAUTHENTICATED");
  equal(refused.details?.reason, "expired");
  const plain = await new AuthenticatorChain([tokens]).authenticate("x");
  equal((plain as ArcpError).details?.reason, "bad_token");
});

Deno.test("an authenticator that throws or names an impossible principal refuses", async () => {
  const throwing: Authenticator = { authenticate: () => Promise.reject(new Error("bug")) };
  for (
    const bad of [
      throwing,
      answering({ principal: "", scheme: "jwt" }),
      answering({ principal: "anon:01J0000000000000000000000", scheme: "jwt" }),
      answering({ principal: "p".repeat(201), scheme: "jwt" }),
    ]
  ) {
    const refused = await new AuthenticatorChain([bad]).authenticate("t");
    ok(refused instanceof ArcpError, JSON.stringify(refused));
    equal(refused.code, "UNAUTHENTICATED");
  }
});

Deno.test("authenticateBearer takes only `Bearer <token>`", async () => {
  deepEqual(await authenticateBearer(tokens, "Bearer alice-token"), {
    principal: "alice",
    scheme: "token",
  });
  deepEqual(await authenticateBearer(tokens, "bearer  alice-token "), {
    principal: "alice",
    scheme: "token",
  });
  for (const header of [undefined, null, "", "Basic YWxpY2U6eA==", "Bearer", "Bearer a b"]) {
    const refused = await authenticateBearer(tokens, header);
    ok(refused instanceof ArcpError, String(header));
    equal(refused.details?.reason, "malformed");
  }
  equal(
    ((await authenticateBearer(tokens, "Bearer nope")) as ArcpError).details?.reason,
    "bad_token",
  );
});
