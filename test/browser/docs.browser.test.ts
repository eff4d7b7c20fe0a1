/**
 * The interactive API reference at /docs in headless Chromium, served by the real platform: Swagger
 * UI renders every operation of /openapi.json from the platform's own files (no request leaves
 * the origin, none blocked by the page's CSP), and "Try it out" calls the API. Screenshot:
 * test-output/docs/docs-1280.png.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { launchChromium } from './chromium.ts';

const fedgeUrl = inject('fedgeUrl');
const SHOTS = join(import.meta.dirname, '..', '..', 'test-output', 'docs');
let browser: Browser | undefined;

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await launchChromium();
}, 60_000);
afterAll(async () => browser?.close());

describe('/docs', () => {
  it('renders every operation from the platform’s own assets, and tries one out', async () => {
    const doc = await (await fetch(`${fedgeUrl}/openapi.json`)).json();
    const operations = Object.values(doc.paths as Record<string, object>).flatMap((item) => Object.keys(item));
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    const elsewhere: string[] = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && problems.push(`${m.text()} ${m.location().url}`));
    page.on('request', (r) => !r.url().startsWith(fedgeUrl) && !r.url().startsWith('data:') && elsewhere.push(r.url()));
    await page.goto(`${fedgeUrl}/docs`);
    await page.waitForFunction((n) => document.querySelectorAll('.opblock').length === n, operations.length, { timeout: 30_000 });
    expect(await page.$$eval('.opblock-summary-operation-id', (els) => els.map((e) => e.textContent).sort())).toEqual(
      Object.values(doc.paths as Record<string, Record<string, { operationId: string }>>)
        .flatMap((item) => Object.values(item).map((op) => op.operationId))
        .sort(),
    );

    await page.click('#operations-service-getHealth .opblock-summary');
    await page.click('#operations-service-getHealth .try-out__btn');
    await page.click('#operations-service-getHealth .execute');
    await page.waitForSelector('#operations-service-getHealth .live-responses-table tbody .response-col_status');
    expect(await page.$eval('#operations-service-getHealth .live-responses-table tbody .response-col_status', (e) => e.textContent?.trim())).toBe('200');
    await page.screenshot({ path: join(SHOTS, 'docs-1280.png') });
    expect(elsewhere).toEqual([]);
    expect(problems).toEqual([]);
    await page.close();
  }, 60_000);
});
