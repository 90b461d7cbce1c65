import { deepEqual, equal } from "assert";
import { acceptKey, readGetHead, readUpgradeHead } from "./upgrade_head.ts";

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const LINES = [
  "GET /arcp HTTP/1.1",
  "Host: 127.0.0.1:7777",
  "Upgrade: websocket",
  "Connection: Upgrade",
  `Sec-WebSocket-Key: ${KEY}`,
  "Sec-WebSocket-Version: 13",
];

function head(lines: string[], tail = "\r\n\r\n"): Uint8Array {
  return Uint8Array.from(lines.join("\r\n") + tail, (c) => c.charCodeAt(0));
}

/** The strict head with line `i` replaced (or removed, with `undefined`). */
function edit(i: number, line: string | undefined): string[] {
  const out = [...LINES];
  if (line === undefined) out.splice(i, 1);
  else out[i] = line;
  return out;
}

Deno.test("a strict upgrade head of a listed path is read: path, host, key and every header as sent", () => {
  const got = readUpgradeHead(head(LINES), ["/other", "/arcp"]);
  equal(got?.path, "/arcp");
  equal(got?.host, "127.0.0.1:7777");
  equal(got?.key, KEY);
  deepEqual(got?.headers.map(([name]) => name), LINES.slice(1).map((l) => l.split(":")[0]));
  // Token lists, any case and optional whitespace are still strict HTTP.
  const browser = readUpgradeHead(
    head([
      "GET /arcp HTTP/1.1",
      "host:h",
      "UPGRADE:  WebSocket\t",
      "connection:keep-alive, Upgrade",
      `sec-websocket-key: ${KEY}`,
      "sec-websocket-version: 13",
      "Origin: http://example",
      "Sec-WebSocket-Extensions: permessage-deflate",
    ]),
    ["/arcp"],
  );
  equal(browser?.key, KEY);
});

Deno.test("every head that is not exactly a WebSocket upgrade is left to the relay", () => {
  const cases: Record<string, Uint8Array> = {
    "another method": head(edit(0, "POST /arcp HTTP/1.1")),
    "another path": head(edit(0, "GET /healthz HTTP/1.1")),
    "a query string": head(edit(0, "GET /arcp?x=1 HTTP/1.1")),
    "HTTP/1.0": head(edit(0, "GET /arcp HTTP/1.0")),
    "an absolute target": head(edit(0, "GET http://h/arcp HTTP/1.1")),
    "two spaces in the request line": head(edit(0, "GET  /arcp HTTP/1.1")),
    "no Host": head(edit(1, undefined)),
    "an empty Host": head(edit(1, "Host:")),
    "two Hosts": head([...LINES, "Host: other"]),
    "no Upgrade": head(edit(2, undefined)),
    "Upgrade: h2c": head(edit(2, "Upgrade: h2c")),
    "no Connection": head(edit(3, undefined)),
    "Connection without upgrade": head(edit(3, "Connection: keep-alive")),
    "no key": head(edit(4, undefined)),
    "a key of 15 bytes": head(edit(4, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ==")),
    "a key that is not base64": head(edit(4, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==")),
    "two keys": head([...LINES, `Sec-WebSocket-Key: ${KEY}`]),
    "version 8": head(edit(5, "Sec-WebSocket-Version: 8")),
    "no version": head(edit(5, undefined)),
    "a body length": head([...LINES, "Content-Length: 0"]),
    "a chunked body": head([...LINES, "Transfer-Encoding: chunked"]),
    "a folded header": head([...LINES, "X-A: a", " folded"]),
    "a space before the colon": head([...LINES, "X-A : a"]),
    "a line without a colon": head([...LINES, "nonsense"]),
    "a bare LF": head([...LINES.slice(0, 2), "X-A: a\nX-B: b", ...LINES.slice(2)]),
    "a control character in a value": head([...LINES, "X-A: a\x01b"]),
    "a byte past ASCII": head([...LINES, "X-A: caf\xe9"]),
    "an incomplete head": head(LINES, "\r\n"),
    "bytes after the head": head(LINES, "\r\n\r\n\x81\x80abcd"),
    "65 header lines": head([...LINES, ...Array.from({ length: 60 }, (_, i) => `X-${i}: v`)]),
  };
  for (const [what, bytes] of Object.entries(cases)) {
    equal(readUpgradeHead(bytes, ["/arcp"]), undefined, what);
  }
  // 64 header lines is the most read here.
  equal(
    readUpgradeHead(head([...LINES, ...Array.from({ length: 59 }, (_, i) => `X-${i}: v`)]), [
      "/arcp",
    ])?.key,
    KEY,
  );
  equal(readUpgradeHead(head(LINES), []), undefined, "no path listed");
});

Deno.test("the accept value is RFC 6455's for its sample key", async () => {
  equal(await acceptKey(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("a plain GET of a listed path is read, with whether it asks to close; anything else is left to the relay", () => {
  const get = ["GET /healthz HTTP/1.1", "Host: a", "Accept: */*"];
  const got = readGetHead(head(get), ["/healthz", "/readyz"]);
  equal(got?.path, "/healthz");
  equal(got?.host, "a");
  equal(got?.close, false);
  deepEqual(got?.headers, [["Host", "a"], ["Accept", "*/*"]]);
  equal(readGetHead(head([...get, "Connection: keep-alive, Close"]), ["/healthz"])?.close, true);
  for (
    const [why, bytes] of [
      ["another path", head(["GET /metrics HTTP/1.1", "Host: a"])],
      ["another method", head(["HEAD /healthz HTTP/1.1", "Host: a"])],
      ["HTTP/1.0", head(["GET /healthz HTTP/1.0", "Host: a"])],
      ["no host", head(["GET /healthz HTTP/1.1"])],
      ["a body", head([...get, "Content-Length: 0"])],
      ["an upgrade", head(LINES.map((l) => l.replace("/arcp", "/healthz")))],
      ["an incomplete head", head(get, "\r\n")],
      ["two requests", head([...get, "", ...get])],
    ] as const
  ) equal(readGetHead(bytes, ["/healthz"]), undefined, why);
});
