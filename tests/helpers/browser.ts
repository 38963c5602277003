// Debian's chromium driven by playwright-core, for the dashboard's browser tests.
// playwright-core is a test-only package: imported by version here and locked in
// deno.test.lock, never in deno.json or deno.lock.
import { join } from "node:path";
// deno-lint-ignore no-import-prefix -- test-only on purpose: kept out of deno.json and deno.lock
import { type BrowserContext, chromium, type Page } from "npm:playwright-core@1.65.1";

export type { BrowserContext, Page };

export const CHROMIUM = "/usr/bin/chromium";

/** Whether Debian's chromium is installed (`apt-get install chromium`; .ci/run does). */
export const hasChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();

/**
 * Headless chromium with a fresh profile (launchPersistentContext owns --user-data-dir),
 * no sandbox (root in CI) and no background networking: nothing leaves the machine.
 */
export async function launch(profile: string): Promise<BrowserContext> {
  return await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 960, height: 600 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Every file under `root` by relative path, with its sha256 (hex). */
export async function readTree(root: string, rel = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of Deno.readDir(join(root, rel))) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) { for (const [k, v] of await readTree(root, path)) out.set(k, v); }
    else {
      const bytes = await Deno.readFile(join(root, path));
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
      out.set(path, Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""));
    }
  }
  return out;
}

/** Waits (in the page, without reloading it) for a job row to reach a status. */
export async function waitForRow(page: Page, status: string, timeout = 60_000): Promise<void> {
  await page.locator(`tbody tr[data-status="${status}"]`).first().waitFor({ timeout });
}

/** Signs in on the dashboard's sign-in page with the admin key; lands on the overview. */
export async function signIn(page: Page, url: string, key: string): Promise<void> {
  await page.goto(url + "/ui/login");
  await page.getByLabel("Admin key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("h1", { hasText: "Overview" }).waitFor();
}
