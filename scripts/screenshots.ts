/**
 * Takes the README's dashboard screenshots: a real runtime in a temp dir
 * with a few real jobs (a ticker with a budget, a spender, a sleeper of
 * another principal, a success, a failure, a cancel), photographed in
 * headless Chromium: the jobs table, a job's page and the runtime page at
 * desktop width, and the jobs table on a phone (390 px).
 *
 * ```sh
 * deno task screenshots          # writes docs/dashboard_*.png
 * ```
 *
 * @module
 */
import type { Page } from "playwright-core";
import { eventsAbove, launchBrowser, progressAbove, signIn } from "../testing/browser.ts";
import { startServer } from "../testing/server.ts";
import { connect } from "../testing/ws_client.ts";

const out = Deno.args[0] ?? "docs";
await Deno.mkdir(out, { recursive: true });

await using server = await startServer({ adminPrincipals: ["alice"] });
const alice = await connect(server.url, "alice-token");
const bob = await connect(server.url, "bob-token");

// Finished jobs first, so the live ones are on top of the newest-first table.
const echo = (await alice.submit({ agent: "echo", input: { hello: "dashboard" } })).job_id!;
await alice.untilTerminal(echo);
const failer = (await bob.submit({ agent: "failer", input: { message: "upstream said 502" } }))
  .job_id!;
await bob.untilTerminal(failer);
const spender = (await alice.submit({
  agent: "spender",
  input: { steps: 6, cost: 0.15, currency: "USD" },
  lease_request: { "tool.call": ["search"], "cost.budget": ["USD:1.00"] },
})).job_id!;
await alice.untilTerminal(spender);
const cancelled = (await alice.submit({ agent: "sleeper", input: { ms: 60_000 } })).job_id!;
alice.send("job.cancel", { reason: "superseded" }, { job_id: cancelled });
await alice.untilTerminal(cancelled);
await bob.submit({ agent: "sleeper", input: { ms: 120_000 } });
const ticker = (await alice.submit({
  agent: "ticker",
  input: { count: 40, interval_ms: 250 },
  lease_request: { "cost.budget": ["USD:2.50"] },
})).job_id!;

await using browser = await launchBrowser();

/** Waits until the ticker's bar shows more than `n` ticks. */
function ticked(page: Page, n: number): Promise<unknown> {
  return page.waitForFunction(progressAbove, [ticker, n] as [string, number]);
}

const desk = await browser.page({ width: 1280, height: 500 });
await signIn(desk.page, server.http, "alice-token");
await ticked(desk.page, 14);
await desk.page.screenshot({ path: `${out}/dashboard_jobs.png` });

await desk.page.setViewportSize({ width: 1280, height: 1000 });
await desk.page.goto(`${server.http}/#/jobs/${ticker}`);
await desk.page.waitForFunction(eventsAbove, 20);
await desk.page.screenshot({ path: `${out}/dashboard_job.png`, fullPage: true });

await desk.page.setViewportSize({ width: 1280, height: 760 });
await desk.page.goto(`${server.http}/#/runtime`);
await desk.page.locator(".tile", { hasText: "Version" }).waitFor();
await desk.page.locator("section:has(#h-diag) :is(ul.diagnostics, p)").waitFor();
await desk.page.screenshot({ path: `${out}/dashboard_runtime.png`, fullPage: true });

const phone = await browser.page({ width: 390, height: 844, scale: 2, mobile: true });
await signIn(phone.page, server.http, "alice-token");
await ticked(phone.page, 24);
await phone.page.screenshot({ path: `${out}/dashboard_phone.png` });

await alice.close();
await bob.close();
const errors = [...desk.errors, ...phone.errors];
if (errors.length > 0) throw new Error(`the page reported errors:\n${errors.join("\n")}`);
console.log(`wrote ${out}/dashboard_{jobs,job,runtime,phone}.png`);
