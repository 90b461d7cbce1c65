import { equal } from "assert";
import { isBudgetRefusal } from "./budget_refusal.ts";

Deno.test("isBudgetRefusal: 402, and 400/403/429 whose error speaks of budget or quota", () => {
  equal(isBudgetRefusal(402, ""), true);
  equal(isBudgetRefusal(429, '{"error":{"type":"budget_exceeded"}}'), true);
  equal(isBudgetRefusal(400, "Budget has been exceeded! Current cost: 1, Max budget: 0.5"), true);
  equal(isBudgetRefusal(429, '{"error":{"code":"insufficient_quota"}}'), true);
  equal(isBudgetRefusal(429, '{"error":{"message":"Rate limit reached, retry in 2s"}}'), false);
  equal(isBudgetRefusal(400, '{"error":{"message":"invalid messages"}}'), false);
  equal(isBudgetRefusal(500, "budget_exceeded"), false);
});
