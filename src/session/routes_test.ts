import { equal } from "assert";
import { routeOf, ROUTES } from "./routes.ts";

Deno.test("only the table's own keys are routes; session.hello is the handshake's", () => {
  equal(routeOf("constructor"), undefined);
  equal(routeOf("toString"), undefined);
  equal(routeOf("session.hello"), undefined);
  equal(routeOf("job.submit"), ROUTES["job.submit"]);
});
