/**
 * Headless Chromium for the browser tests: Debian's `chromium` driven by playwright-core
 * through `executablePath`, started with flags that keep it off the network (every host name
 * but 127.0.0.1 fails to resolve, and background services are off). Screenshots go to
 * `dist/test-artifacts/ops/`.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';

const CANDIDATES = [process.env.DIVAN_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
export const ARTIFACTS_DIR = resolve('dist/test-artifacts/ops');

const OFFLINE_FLAGS = [
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--disable-sync',
  '--disable-client-side-phishing-detection',
  '--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider',
  '--metrics-recording-only',
  '--no-first-run',
  '--no-default-browser-check',
  '--safebrowsing-disable-auto-update',
  '--no-sandbox',
];

/** Finds the Chromium executable; null when none is installed. */
export function chromiumPath(): string | null {
  for (const candidate of CANDIDATES) {
    if (candidate !== undefined && candidate !== '' && existsSync(candidate)) return candidate;
  }
  return null;
}

export const MISSING_CHROMIUM =
  'Chromium is not installed: install it with `apt-get install chromium` ' +
  '(or set DIVAN_CHROMIUM to its path) to run the browser tests';

/** Launches Chromium and closes it when the test ends; null (test skipped) when missing. */
export async function launchBrowser(t: TestContext): Promise<Browser | null> {
  const executablePath = chromiumPath();
  if (executablePath === null) {
    t.skip(MISSING_CHROMIUM);
    return null;
  }
  const browser = await chromium.launch({ executablePath, headless: true, args: OFFLINE_FLAGS });
  t.after(() => browser.close());
  return browser;
}

/** Saves a full-page screenshot as a test artifact and returns its path. */
export async function screenshot(t: TestContext, page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  t.diagnostic(`screenshot: ${path}`);
  return path;
}
