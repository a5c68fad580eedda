/**
 * The dashboard's browser tests: its build (made when missing or older than its sources), and a headless Chromium
 * (Debian's, driven by playwright-core) whose page records every request it makes, every console message, every
 * dialog and every CSP violation. Screenshots go to `.data/test-artifacts/dashboard/` (not committed).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const ARTIFACTS = join(REPO_ROOT, '.data', 'test-artifacts', 'dashboard');

export { ensureDashboardBuilt } from '../../infra/dashboard-build.js';

export interface Recorded {
  requests: string[];
  console: { type: string; text: string }[];
  dialogs: string[];
  pageErrors: string[];
}

export interface DashboardBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  recorded: Recorded;
  screenshot: (name: string) => Promise<void>;
  close: () => Promise<void>;
}

/** A browser with one page at `viewport`, recording what the page does. */
export async function openBrowser(viewport = { width: 1280, height: 900 }): Promise<DashboardBrowser> {
  const browser = await chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox'],
  });
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const recorded: Recorded = { requests: [], console: [], dialogs: [], pageErrors: [] };
  context.on('request', (request) => recorded.requests.push(request.url()));
  page.on('console', (message) => recorded.console.push({ type: message.type(), text: message.text() }));
  page.on('pageerror', (error) => recorded.pageErrors.push(error.message));
  page.on('dialog', (dialog) => {
    recorded.dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  mkdirSync(ARTIFACTS, { recursive: true });
  return {
    browser,
    context,
    page,
    recorded,
    screenshot: async (name) => {
      await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
    },
    close: () => browser.close(),
  };
}

/** Console messages that report a Content-Security-Policy violation. */
export const cspViolations = (recorded: Recorded): string[] =>
  recorded.console.filter((message) => /content security policy|refused to/i.test(message.text)).map((message) => message.text);
