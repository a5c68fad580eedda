/**
 * The dashboard driven by keyboard alone, and with its API gone (issue 18: "keyboard navigable", "error states
 * everywhere (… the API down)"), in headless Chromium against an API process of this file's own: the key is typed
 * and submitted without a pointer, the cards fill, and once the process is stopped every polled section says it could
 * not refresh (an alert) while the values last read stay on the page.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLimitId } from '../../src/shared/index.js';
import { startApiServer, storeTenantPlan, type ApiServer } from '../support/api-server.js';
import { ensureDashboardBuilt, openBrowser, type DashboardBrowser } from '../support/browser.js';
import { waitFor } from '../support/poll.js';

const scratch = mkdtempSync(join(tmpdir(), 'dashboard-states-'));
let api: ApiServer | undefined;
let web: DashboardBrowser | undefined;
let tenant = { tenant: '', key: '' };

beforeAll(async () => {
  ensureDashboardBuilt();
  tenant = await storeTenantPlan([
    {
      id: parseLimitId('burst'),
      scope: 'tenant',
      algorithm: { kind: 'token-bucket', capacity: 700, refillAmount: 1, refillPeriodMs: 3_600_000 },
      mode: 'hard',
      onDeciderDown: 'closed',
    },
  ]);
  api = await startApiServer({ scratch });
  web = await openBrowser();
}, 180_000);

afterAll(async () => {
  await web?.close();
  await api?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

describe('the dashboard without a pointer, and without its API', () => {
  it('signs in by keyboard alone, then shows an alert in every polled section once the API is gone, keeping the last values', async () => {
    const { page } = web as DashboardBrowser;
    const server = api as ApiServer;
    await page.goto(`${server.baseUrl}/dashboard`);
    // when the key field is reached with Tab (no click), the key typed and Enter pressed
    const field = page.getByLabel('API key (tenant) or admin token (operator)');
    for (let presses = 0; presses < 10 && !(await field.evaluate((element) => element === document.activeElement)); presses += 1) {
      await page.keyboard.press('Tab');
    }
    expect(await field.evaluate((element) => element === document.activeElement)).toBe(true);
    await page.keyboard.type(tenant.key);
    await page.keyboard.press('Enter');
    // then the tenant is signed in and its limit card filled
    await page.getByTestId('limit-card').first().waitFor();
    expect(await page.getByTestId('who').textContent()).toBe(tenant.tenant);
    // and Sign out is reachable by keyboard too
    const signOut = page.getByRole('button', { name: 'Sign out' });
    let isSignOutFocused = false;
    for (let presses = 0; presses < 40 && !isSignOutFocused; presses += 1) {
      await page.keyboard.press('Shift+Tab');
      isSignOutFocused = await signOut.evaluate((element) => element === document.activeElement);
    }
    expect(isSignOutFocused).toBe(true);
    await expect(page.locator('[data-state="error"]').count()).resolves.toBe(0);

    // when the API process is gone
    await server.stop();
    api = undefined;
    // then, within a refresh or two, the polled sections say they could not refresh, as alerts
    const alerts = await waitFor(
      'the sections to report the API down',
      async () => {
        const count = await page.locator('[role="alert"][data-state="error"]').count();
        return count > 0 && count;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(alerts).toBeGreaterThan(0);
    // and the values last read stay on the page (the card is still there, with its limit)
    expect(await page.getByTestId('limit-card').first().textContent()).toContain('burst');
    await (web as DashboardBrowser).screenshot('tenant-api-down');
  });
});
