/**
 * The dashboard end to end, in headless Chromium against a real runtime (a
 * real KV file in a temp dir, real sandbox processes): sign in, watch a
 * ticker's progress bar advance in the live jobs table, open the job and see
 * its events arrive, cancel a sleeper with the button and see it end
 * CANCELLED (and its submitting session told), find no serious problem
 * with axe-core on any view, and render every view at phone width.
 * No step sleeps: each waits for what the page shows.
 *
 * Needs Chromium: `.ci/run` installs Debian's package when it is missing.
 * Outside CI without it, the test is skipped with a line saying so.
 */
import { deepEqual, equal, ok } from "assert";
import type { Page } from "playwright-core";
import {
  accessibilityProblems,
  CHROMIUM,
  eventsAbove,
  haveChromium,
  launchBrowser,
  pageWidth,
  progressAbove,
  rowProgress,
  signIn,
  type TestBrowser,
} from "../../testing/browser.ts";
import { startServer, type TestServer } from "../../testing/server.ts";
import { connect, type WsClient } from "../../testing/ws_client.ts";

const chromiumThere = await haveChromium();
const inCi = Deno.env.get("CI") === "true";
if (!chromiumThere && !inCi) {
  console.error(
    `dashboard_test: skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium)`,
  );
}

/** A ticker long enough to be watched, slow enough to be cancelled. */
const TICKER = { agent: "ticker", input: { count: 600, interval_ms: 100 } };
const SLEEPER = { agent: "sleeper", input: { ms: 120_000 } };

Deno.test({
  name: "dashboard: sign in, live progress, live events, cancel, phone width",
  ignore: !chromiumThere && !inCi,
  // Playwright keeps its pipe to the browser and timers of its own.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using server: TestServer = await startServer({ adminPrincipals: ["bob"] });
    const alice: WsClient = await connect(server.url, "alice-token");
    await using browser: TestBrowser = await launchBrowser();
    try {
      const ticker = (await alice.submit(TICKER)).job_id!;
      const sleeper = (await alice.submit(SLEEPER)).job_id!;
      const { page, errors } = await browser.page();

      await t.step("the page is served with a strict CSP and asks for a token", async () => {
        const res = await page.goto(`${server.http}/`);
        const csp = res!.headers()["content-security-policy"];
        ok(csp.includes("script-src 'self'") && !csp.includes("unsafe-inline"), csp);
        await page.getByLabel("Access token").waitFor();
      });

      await t.step("a wrong token is refused on the form", async () => {
        await page.getByLabel("Access token").fill("not-a-token");
        await page.getByRole("button", { name: "Sign in" }).click();
        await page.getByRole("alert").filter({ hasText: "not accepted" }).waitFor();
      });

      await t.step("signed in, the ticker's progress bar advances in the jobs table", async () => {
        await signIn(page, server.http, "alice-token");
        await page.locator(".principal", { hasText: "alice" }).waitFor();
        await page.waitForFunction(progressAbove, [ticker, -1] as [string, number]);
        const first = await page.evaluate(rowProgress, ticker);
        await page.waitForFunction(progressAbove, [ticker, first] as [string, number]);
        const second = await page.evaluate(rowProgress, ticker);
        ok(second > first, `progress went from ${first} to ${second}`);
        const row = page.locator(`tr[data-job-id="${ticker}"]`);
        ok((await row.textContent())!.includes("ticker@1.0.0"));
        ok((await row.textContent())!.includes("alice"));
        await page.locator(`tr[data-job-id="${sleeper}"]`).waitFor();
      });

      await t.step("the ticker's page shows its events as they happen", async () => {
        await page.locator(`tr[data-job-id="${ticker}"] a`).click();
        await page.locator("#h-events").waitFor();
        await page.locator("#events li[data-kind=progress]").first().waitFor();
        const seen = await page.locator("#events li").count();
        await page.waitForFunction(eventsAbove, seen);
        ok(await page.locator("#events li").count() > seen);
        ok((await page.locator(".facts").textContent())!.includes("ticker@1.0.0"));
        await page.getByText("No capabilities granted.").or(page.locator("pre.json")).first()
          .waitFor();
        await page.getByText("None issued.").waitFor();
      });

      await t.step("the cancel button ends the sleeper CANCELLED", async () => {
        await page.goto(`${server.http}/#/jobs/${sleeper}`);
        await page.locator(".status-line .badge", { hasText: /running|pending/i }).waitFor();
        await page.getByRole("button", { name: "Cancel job" }).click();
        await page.getByLabel("Reason").fill("from the dashboard test");
        await page.getByRole("button", { name: "Cancel the job" }).click();
        await page.locator(".status-line .badge", { hasText: /cancelled/i }).waitFor();
        await page.locator("#events li[data-kind=error]", { hasText: "CANCELLED" }).waitFor();
        await page.locator(".status-line", { hasText: "(by alice)" }).waitFor();
        ok(await page.getByRole("button", { name: "Cancel job" }).isHidden());
        const terminal = (await alice.untilTerminal(sleeper, 30_000)).at(-1)!;
        equal(terminal.type, "job.error");
        equal(terminal.payload.final_status, "cancelled");
        equal(terminal.payload.code, "CANCELLED");
        equal(terminal.payload.details?.actor, "alice");
      });

      /** The four views, each with what shows it has rendered. */
      const views: Array<[string, (p: Page) => Promise<void>]> = [
        ["#/jobs", (p) => p.locator(`tr[data-job-id="${ticker}"] progress[value]`).waitFor()],
        [`#/jobs/${ticker}`, (p) => p.locator("#events li").first().waitFor()],
        ["#/sessions", (p) => p.locator("tbody tr").first().waitFor()],
        ["#/runtime", (p) => p.locator("section:has(#h-hosts) :is(table, p)").waitFor()],
      ];

      await t.step("the sessions and runtime pages render from the menu", async () => {
        await page.getByRole("link", { name: "Sessions", exact: true }).click();
        await page.locator("td", { hasText: "alice" }).first().waitFor();
        await page.getByRole("link", { name: "Runtime", exact: true }).click();
        await page.locator(".tile", { hasText: "Version" }).waitFor();
        await page.getByText("Diagnostics are shown to admins.").waitFor();
      });

      await t.step("axe finds no serious accessibility problem on any view", async () => {
        for (const [hash, rendered] of views) {
          await page.goto(`${server.http}/${hash}`);
          await rendered(page);
          deepEqual(await accessibilityProblems(page), [], hash);
        }
      });

      await t.step("at phone width (390 px), as an admin, no view overflows sideways", async () => {
        const phone = await browser.page({ width: 390, height: 844, mobile: true });
        await phone.page.goto(`${server.http}/`);
        await phone.page.getByLabel("Access token").waitFor();
        deepEqual(await accessibilityProblems(phone.page), [], "sign-in form");
        await signIn(phone.page, server.http, "bob-token");
        await phone.page.locator(".principal .tag", { hasText: "admin" }).waitFor();
        for (const [hash, rendered] of views) {
          await phone.page.goto(`${server.http}/${hash}`);
          await rendered(phone.page);
          const width = await phone.page.evaluate(pageWidth);
          ok(width <= 390, `${hash} is ${width} px wide`);
        }
        // An admin sees the diagnostics.
        await phone.page.locator("ul.diagnostics li").first().waitFor();
        equal(phone.errors.join("\n"), "");
        await phone.context.close();
      });

      // Console errors include CSP violations: the page uses no inline code.
      equal(errors.filter((e) => !e.includes("401")).join("\n"), "");
    } finally {
      await alice.close();
    }
  },
});
