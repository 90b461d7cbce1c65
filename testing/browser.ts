/**
 * Headless Chromium for the dashboard's tests and screenshots: Debian's
 * `chromium` package driven by `playwright-core` (which downloads no browser
 * of its own). `.ci/run` installs the package when it is missing;
 * `CHROMIUM_BIN` names another binary.
 *
 * @module
 */
// First: playwright-core probes a path Deno reserves to --allow-all as it loads.
import "./_node_fs_exists.ts";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import axe from "axe-core";
import { setTimeout as delay } from "node:timers/promises";

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

/**
 * A launched browser. Disposing it closes the browser and checks that every
 * process of its tree (renderers, GPU and utility processes, the zygote)
 * has ended, killing and naming any left.
 */
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
  // A browser server, not `launch`: it tells the browser's pid, so the
  // dispose below can find every process of its tree.
  const server = await chromium.launchServer({
    executablePath: CHROMIUM,
    // Containers often have a small /dev/shm. (Playwright already passes
    // --no-sandbox, which a root user needs.)
    args: ["--disable-dev-shm-usage"],
  });
  const pid = server.process().pid!;
  const browser = await chromium.connect(server.wsEndpoint());
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
      const tree = descendants(await processTable(), pid);
      await browser.close();
      await server.close();
      await noneLeft(tree);
    },
  };
}

/** One row of `ps`. */
interface Proc {
  pid: number;
  ppid: number;
  /** `ps`'s state letters; `Z` is a zombie, ended but not yet reaped. */
  state: string;
}

/**
 * Every process, from `ps` (Deno reserves `/proc` to `--allow-all`).
 *
 * @returns the process table
 */
async function processTable(): Promise<Proc[]> {
  const out = await new Deno.Command("ps", { args: ["-eo", "pid=,ppid=,stat="] }).output();
  return new TextDecoder().decode(out.stdout).trim().split("\n").map((line) => {
    const [pid, ppid, state] = line.trim().split(/\s+/);
    return { pid: Number(pid), ppid: Number(ppid), state };
  });
}

/**
 * A process and all its descendants.
 *
 * @param table the process table
 * @param root the root's pid
 * @returns their pids
 */
function descendants(table: Proc[], root: number): number[] {
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const p of table) if (p.ppid === tree[i]) tree.push(p.pid);
  }
  return tree;
}

/**
 * Waits (up to 10 s) for the given processes to end; kills and names any
 * still running then.
 *
 * @param pids the processes
 * @throws when any had to be killed
 */
async function noneLeft(pids: number[]): Promise<void> {
  const running = async () => {
    const table = await processTable();
    return pids.filter((pid) => table.some((p) => p.pid === pid && !p.state.startsWith("Z")));
  };
  const deadline = Date.now() + 10_000;
  let left = await running();
  // No event tells another process's end: look again until they are gone.
  while (left.length > 0 && Date.now() < deadline) {
    await delay(50);
    left = await running();
  }
  if (left.length === 0) return;
  for (const pid of left) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Ended in between.
    }
  }
  throw new Error(`chromium processes left behind after close: ${left.join(", ")}`);
}

/**
 * The little of the DOM the page functions below touch. Those functions
 * are for `page.evaluate` and `page.waitForFunction`: they run in the page
 * (Playwright sends their source), and the tests are type-checked without
 * the DOM's types. Functions, not strings: the page's CSP forbids eval, and
 * Playwright evaluates a string predicate with it.
 */
export interface PageGlobal {
  /** The page's document. */
  document: {
    querySelector(selector: string): { value: number } | null;
    querySelectorAll(selector: string): { length: number };
    documentElement: { scrollWidth: number };
  };
}

/**
 * In the page: the value of the progress bar in a job's row.
 *
 * @param jobId the job
 * @returns the bar's value, or -1 while the row has no determinate bar
 */
export function rowProgress(jobId: string): number {
  const bar = (globalThis as unknown as PageGlobal).document.querySelector(
    `tr[data-job-id="${jobId}"] progress[value]`,
  );
  return bar ? bar.value : -1;
}

/**
 * In the page: whether a job's progress bar shows more than `before`.
 *
 * @param args the job and the value to exceed
 * @returns true once it does
 */
export function progressAbove([jobId, before]: [string, number]): boolean {
  const bar = (globalThis as unknown as PageGlobal).document.querySelector(
    `tr[data-job-id="${jobId}"] progress[value]`,
  );
  return bar !== null && bar.value > before;
}

/**
 * In the page: whether the job page lists more than `n` events.
 *
 * @param n the count to exceed
 * @returns true once it does
 */
export function eventsAbove(n: number): boolean {
  return (globalThis as unknown as PageGlobal).document.querySelectorAll("#events li").length > n;
}

/**
 * In the page: its width, scrolling included.
 *
 * @returns CSS pixels
 */
export function pageWidth(): number {
  return (globalThis as unknown as PageGlobal).document.documentElement.scrollWidth;
}

/** What axe reports of one rule a page breaks. */
interface AxeViolation {
  id: string;
  impact?: string | null;
  help: string;
  nodes: Array<{ target: unknown[] }>;
}

/**
 * In the page: axe-core's checks (labels, names of buttons and links,
 * contrast, landmarks, ARIA) on the document as it is now.
 *
 * @returns the rules broken
 */
function runAxe(): Promise<AxeViolation[]> {
  const page = globalThis as unknown as {
    axe: { run(): Promise<{ violations: AxeViolation[] }> };
  };
  return page.axe.run().then((r) => r.violations);
}

/**
 * The accessibility problems axe-core finds on a page, serious and
 * critical ones only (moderate ones are matters of taste such as landmark
 * placement).
 *
 * @param page the page, rendered as it should be checked
 * @returns one line per broken rule: its id, impact, help and the elements
 */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  // Sent over the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(axe.source);
  const violations = await page.evaluate(runAxe);
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) =>
      `${v.id} (${v.impact}): ${v.help}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`
    );
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
