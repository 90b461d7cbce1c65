/**
 * Headless Chromium for the dashboard's tests and screenshots: Debian's
 * `chromium` package driven by `playwright-core` (which downloads no browser
 * of its own). `.ci/run` installs the package when it is missing;
 * `CHROMIUM_BIN` names another binary.
 *
 * @module
 */
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

/** The Chromium binary: `CHROMIUM_BIN`, else Debian's. */
export const CHROMIUM: string = Deno.env.get("CHROMIUM_BIN") ?? "/usr/bin/chromium";

/**
 * Whether the Chromium binary is there.
 *
 * @returns true when it is a file
 */
export async function haveChromium(): Promise<boolean> {
  return await Deno.stat(CHROMIUM).then((s) => s.isFile, () => false);
}

/** A launched browser that closes (and so ends its processes) when disposed. */
export interface TestBrowser extends AsyncDisposable {
  /** The browser. */
  browser: Browser;
  /**
   * A fresh page in its own context (its own sessionStorage), with every
   * console error and uncaught page error collected, CSP violations among
   * them.
   *
   * @param options the viewport, colour scheme and device scale
   * @returns the page and the errors seen so far
   */
  page(options?: PageOptions): Promise<{ page: Page; context: BrowserContext; errors: string[] }>;
}

/** How a page is shown. */
export interface PageOptions {
  /** Viewport width in CSS pixels (default 1280). */
  width?: number;
  /** Viewport height in CSS pixels (default 800). */
  height?: number;
  /** Colour scheme (default light). */
  colorScheme?: "light" | "dark";
  /** Device pixel ratio (default 1). */
  scale?: number;
  /** Whether to emulate a touch phone. */
  mobile?: boolean;
}

/**
 * Launches headless Chromium.
 *
 * @returns the browser, closed by `await using`
 * @example
 * ```ts ignore
 * await using b = await launchBrowser();
 * const { page } = await b.page({ width: 390, height: 844 });
 * ```
 */
export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Containers often have a small /dev/shm. (Playwright already passes
    // --no-sandbox, which a root user needs.)
    args: ["--disable-dev-shm-usage"],
  });
  return {
    browser,
    async page(options = {}) {
      const context = await browser.newContext({
        viewport: { width: options.width ?? 1280, height: options.height ?? 800 },
        colorScheme: options.colorScheme ?? "light",
        deviceScaleFactor: options.scale ?? 1,
        isMobile: options.mobile ?? false,
        hasTouch: options.mobile ?? false,
      });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text());
      });
      page.on("pageerror", (e) => errors.push(e.message));
      return { page, context, errors };
    },
    async [Symbol.asyncDispose]() {
      await browser.close();
    },
  };
}

/**
 * Signs in to the dashboard with a token and waits for the signed-in shell.
 *
 * @param page the page
 * @param base the runtime's `http://` URL
 * @param token the bearer token
 */
export async function signIn(page: Page, base: string, token: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByLabel("Access token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("header.top:not([hidden])").waitFor();
}
