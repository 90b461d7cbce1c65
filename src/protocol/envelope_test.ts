import { deepStrictEqual, equal, throws } from "assert";
import { decodeEnvelope, EnvelopeSchema } from "./envelope.ts";
import { ArcpError } from "./errors.ts";

// decodeEnvelope builds plainly valid envelopes without zod: it must give
// exactly what the schema gives (fields, their order, unknown ones dropped).
const VALID = [
  '{"arcp":"1.1","id":"1","type":"session.ping","payload":{}}',
  '{"arcp":"1.1","id":"e1","type":"job.submit","payload":{"agent":"echo","input":{"a":[1,2]}},' +
  '"extra":5,"trace_id":"0123456789abcdef0123456789abcdef","job_id":"j","session_id":"s",' +
  '"event_seq":3,"extensions":{"x.y":{"z":1}}}',
  '{"payload":{"b":1,"a":2},"type":"t","id":"i","arcp":"1.1","event_seq":0}',
  `{"arcp":"1.1","id":"${"i".repeat(256)}","type":"t","payload":{"n":null}}`,
];

Deno.test("decodeEnvelope gives what the envelope schema gives", () => {
  for (const text of VALID) {
    const decoded = decodeEnvelope(text);
    const parsed = EnvelopeSchema.parse(JSON.parse(text));
    deepStrictEqual(decoded, parsed);
    equal(JSON.stringify(decoded), JSON.stringify(parsed));
  }
});

Deno.test("decodeEnvelope copies payload and extensions rather than keeping the parsed objects", () => {
  const env = decodeEnvelope(
    '{"arcp":"1.1","id":"1","type":"t","payload":{"a":1},"extensions":{"x":1}}',
  );
  env.payload.b = 2;
  deepStrictEqual(env.payload, { a: 1, b: 2 });
  deepStrictEqual(env.extensions, { x: 1 });
});

const INVALID: Array<[string, string]> = [
  ['{"arcp":"1.1","id":"","type":"t","payload":{}}', "id: "],
  [`{"arcp":"1.1","id":"${"i".repeat(257)}","type":"t","payload":{}}`, "id: "],
  ['{"arcp":"1.1","id":"1","type":7,"payload":{}}', "type: "],
  ['{"arcp":"1.1","id":"1","type":"t","payload":[]}', "payload: "],
  ['{"arcp":"1.1","id":"1","type":"t"}', "payload: "],
  ['{"arcp":"1.1","id":"1","type":"t","payload":{},"event_seq":-1}', "event_seq: "],
  ['{"arcp":"1.1","id":"1","type":"t","payload":{},"event_seq":1.5}', "event_seq: "],
  ['{"arcp":"1.1","id":"1","type":"t","payload":{},"trace_id":"X"}', "trace_id: must be 32"],
  ['{"arcp":"1.1","id":"1","type":"t","payload":{},"session_id":""}', "session_id: "],
  ['{"arcp":"1.1","id":"1","type":"t","payload":{},"extensions":null}', "extensions: "],
  ['{"arcp":"1.0","id":"1","type":"t","payload":{}}', 'arcp: expected "1.1"'],
  ["[1]", "frame is not a JSON object"],
  ["{", "frame is not valid JSON"],
];

Deno.test("decodeEnvelope refuses a bad envelope with INVALID_REQUEST naming the field", () => {
  for (const [text, start] of INVALID) {
    throws(
      () => decodeEnvelope(text),
      (err: unknown) =>
        err instanceof ArcpError && err.code === "INVALID_REQUEST" && err.message.startsWith(start),
      text,
    );
  }
});
